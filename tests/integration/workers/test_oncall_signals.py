"""On-call's two signals of a defect, set where the scheduler sets them, on a real
PostgreSQL: what the sweeper had to rescue (``fulfillment_sweeper_rescues_total{kind}``:
an order its own message should have moved on, a stored event never applied; a poll of
an order waiting on a carrier is routine and not counted), and the provider events
stored but still unapplied after a minute (``fulfillment_provider_events_unapplied``)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import Engine, text

from fulfillment import messages as m
from fulfillment.models import OutboxMessage
from monitoring import metrics
from tests.support.storefront import add_product, bearer, customer_token, order_body
from workers import gauges
from workers.sweeper import sweep

STALL = timedelta(minutes=2)


def rescues(kind: str) -> float:
    return REGISTRY.get_sample_value("fulfillment_sweeper_rescues_total", {"kind": kind}) or 0.0


def unapplied(provider: str) -> float | None:
    return REGISTRY.get_sample_value("fulfillment_provider_events_unapplied",
                                     {"provider": provider})  # fmt: skip


def stored_event(engine: Engine, provider: str, *, minutes_ago: float, applied: bool) -> int:
    with engine.begin() as conn:
        return conn.execute(text("""
            INSERT INTO webhook_events (provider, event_id, event_type, payload, received_at,
                                        processed_at)
            VALUES (:provider, :event_id, 'tracker.updated', '{}',
                    now() - make_interval(mins => :ago), CASE WHEN :applied THEN now() END)
            RETURNING id"""), {"provider": provider, "event_id": f"evt_{uuid.uuid4().hex}",
                               "ago": minutes_ago, "applied": applied}).scalar_one()  # fmt: skip


def queued(engine: Engine, message: tuple[str, str], **kwargs: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            text("SELECT count(*) FROM outbox WHERE actor_name = :actor AND kwargs @> :kwargs"),
            {"actor": message[0], "kwargs": json.dumps(kwargs)},
        )


async def test_the_sweeper_counts_what_it_rescues_by_kind_and_not_what_it_polls(client, db):
    # Given an order its own message left in pending, an order shipped and waiting on
    # the carrier, both untouched for half an hour, and an event stored 10 minutes ago
    # and never applied
    token = await customer_token(client)
    placed = []
    for _ in range(2):
        response = await client.post("/v1/orders", json=order_body((add_product(db), 1)),
                                     headers=bearer(token))  # fmt: skip
        assert response.status == 201, await response.text()
        placed.append((await response.json())["id"])
    lost, waiting = placed
    with db.begin() as conn:
        conn.execute(text("UPDATE orders SET status = 'shipped' WHERE id = :id"), {"id": waiting})
        conn.execute(text("UPDATE orders SET status_changed_at = now() - interval '30 minutes', "
                          "updated_at = now() - interval '30 minutes'"))  # fmt: skip
        conn.execute(OutboxMessage.__table__.delete())
    event = stored_event(db, "easypost", minutes_ago=10, applied=False)
    before = {kind: rescues(kind) for kind in metrics.RESCUE_KINDS}

    # When the scheduler's sweeper runs
    swept = sweep(db, stall=STALL)

    # Then both orders and the event are sent again
    assert swept["stalled_orders"] == 2 and swept["webhooks"] == 1
    assert queued(db, m.RESERVE_INVENTORY, order_id=lost) == 1
    assert queued(db, m.REFRESH_TRACKING, order_id=waiting) == 1
    assert queued(db, m.PROCESS_WEBHOOK, event_id=str(event)) == 1
    # but only the dropped order and the unapplied event count as rescues
    after = {kind: rescues(kind) - before[kind] for kind in metrics.RESCUE_KINDS}
    assert after == {**dict.fromkeys(metrics.RESCUE_KINDS, 0.0), "order": 1.0,
                     "webhook_event": 1.0}  # fmt: skip


def test_the_gauge_counts_provider_events_still_unapplied_after_a_minute(db):
    # Given an EasyPost event unapplied for two minutes, a Stripe one stored just now
    # (its application may be under way), and an applied one
    stored_event(db, "easypost", minutes_ago=2, applied=False)
    stored_event(db, "stripe", minutes_ago=0, applied=False)
    stored_event(db, "stripe", minutes_ago=5, applied=True)

    # When the scheduler refreshes its gauges
    with db.connect() as conn:
        gauges.refresh_unapplied_events(conn)

    # Then only the old unapplied event counts, and every provider has its series
    assert (unapplied("easypost"), unapplied("stripe")) == (1.0, 0.0)
