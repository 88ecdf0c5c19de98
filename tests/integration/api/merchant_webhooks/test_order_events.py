"""The real orders trigger writes the merchant events: none without a subscribed endpoint,
every milestone with its per-order sequence, and it knows every milestone in the
constant."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from fulfillment.merchant_events import EVENT_TYPES
from fulfillment.models import MerchantEvent, Order, OrderLine, OutboxMessage
from fulfillment.packages import package_id
from pipelines.merchant_webhooks.deliver import render
from tests.support.merchant_webhooks import ENDPOINTS, deliveries, place_order, register, set_status
from workers.webhook_dispatch import dispatch_due


async def test_without_a_subscribed_endpoint_an_order_writes_no_event(client, admin, db):
    await register(client, admin, "https://merchant.example.com/hooks", ["order.delivered"])
    order_id = await place_order(client, db)
    set_status(db, order_id, "reserved")

    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(MerchantEvent)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.actor_name == "deliver_webhook")) == 0  # fmt: skip


async def test_every_milestone_is_an_event_with_its_per_order_sequence(client, admin, db):
    # Given an endpoint for every type and one disabled endpoint
    endpoint = await register(client, admin, "https://merchant.example.com/hooks")
    off = await register(client, admin, "https://other.example.com/hooks")
    await client.patch(f"{ENDPOINTS}/{off['id']}", json={"disabled": True}, headers=admin)

    # When an order is placed and moves through its states
    order_id = await place_order(client, db)
    for status in ("reserved", "paid", "fulfilling", "shipped", "in_transit", "delivered"):
        set_status(db, order_id, status)
    # (a timeline entry that is no move, as the e-mail events write, is no milestone)
    with db.begin() as conn:
        conn.execute(text("INSERT INTO order_events (order_id, step, outcome) "
                          "VALUES (:id, 'email_event', 'bounce')"), {"id": order_id})  # fmt: skip

    # Then each milestone is one event, in sequence, for the enabled endpoint only
    with Session(db) as session:
        rows = session.execute(select(MerchantEvent.type, MerchantEvent.sequence, MerchantEvent.id,
                                      MerchantEvent.snapshot)
                               .where(MerchantEvent.order_id == uuid.UUID(order_id))
                               .order_by(MerchantEvent.sequence)).all()  # fmt: skip
    assert [(r.type, r.sequence) for r in rows] == [
        ("order.created", 1),
        ("order.paid", 2),
        ("order.shipped", 3),
        ("order.delivered", 4),
    ]
    assert all(r.id.startswith("evt_") for r in rows)
    assert [r.snapshot["status"] for r in rows] == ["pending", "paid", "shipped", "delivered"]
    sent = deliveries(db)
    assert {str(d.endpoint_id) for d in sent} == {endpoint["id"]} and len(sent) == 4
    # each delivery due at once, and no message of its own: the scheduler's dispatch
    # sends the endpoint's due deliveries in one message, the order's events in sequence
    assert all(d.next_attempt_at <= datetime.now(UTC) for d in sent)
    assert _queued(db) == []
    assert dispatch_due(db) == 4
    by_event = {d.event_id: str(d.id) for d in sent}
    assert _queued(db) == [("deliver_webhooks", [by_event[r.id] for r in rows])]


def _queued(db) -> list[tuple[str, list[str]]]:
    with Session(db) as session:
        rows = session.execute(select(OutboxMessage.actor_name, OutboxMessage.kwargs)
                               .where(OutboxMessage.queue_name == "merchant_webhooks")
                               .order_by(OutboxMessage.id)).all()  # fmt: skip
    return [
        (actor, kwargs.get("delivery_ids") or [kwargs["delivery_id"]]) for actor, kwargs in rows
    ]


def test_the_trigger_knows_every_milestone_in_the_constant(db):
    """The migration froze its list; a milestone added to the constant needs a migration."""
    with db.connect() as conn:
        source = conn.scalar(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'merchant_order_events'")
        )
    assert all(f"'{kind}'" in source for kind in EVENT_TYPES)


async def test_a_packages_milestone_carries_that_package(client, admin, db):
    # Given an endpoint for every type and an order whose stock is at two locations
    await register(client, admin, "https://merchant.example.com/hooks")
    order_id = await place_order(client, db)
    with Session(db) as session:
        (product,) = session.scalars(select(OrderLine.product_id).where(
            OrderLine.order_id == uuid.UUID(order_id))).all()  # fmt: skip
    here, there = str(uuid.uuid4()), str(uuid.uuid4())
    package = {"id": str(package_id(order_id, here)), "location_id": here}
    with db.begin() as conn:
        conn.execute(update(Order).where(Order.id == uuid.UUID(order_id)).values(allocation=[
            {"product_id": str(product), "location_id": here, "quantity": 1},
            {"product_id": str(product), "location_id": there, "quantity": 1}],
            parcels={here: {"carrier": "USPS", "tracking_code": "EZ1", "shipment_id": "shp_1",
                            "status": "shipped"}}))  # fmt: skip

    # When its first parcel leaves (the label's commit names the package on the timeline)
    with db.begin() as conn:
        conn.execute(text("""
            WITH moved AS (UPDATE orders SET status = 'partially_shipped' WHERE id = :id)
            INSERT INTO order_events (order_id, step, from_status, to_status, details)
            VALUES (:id, 'ship_order', 'fulfilling', 'partially_shipped', CAST(:d AS jsonb))
        """), {"id": order_id, "d": json.dumps({"package": package})})  # fmt: skip

    # Then the event is order.partially_shipped, and its body carries that package, shipped
    with Session(db) as session:
        event = session.execute(select(MerchantEvent).where(
            MerchantEvent.order_id == uuid.UUID(order_id),
            MerchantEvent.type == "order.partially_shipped")).scalar_one()  # fmt: skip
        lines = session.scalars(select(OrderLine).where(
            OrderLine.order_id == uuid.UUID(order_id))).all()  # fmt: skip
    body = json.loads(render(SimpleNamespace(
        event_id=event.id, type=event.type, sequence=event.sequence, order_id=event.order_id,
        snapshot=event.snapshot, created_at=event.created_at), lines))  # fmt: skip
    assert body["data"]["package"]["id"] == package["id"]
    assert body["data"]["package"]["status"] == "shipped"
    assert body["data"]["package"]["tracking_code"] == "EZ1"
    assert {p["status"] for p in body["data"]["object"]["packages"]} == {"shipped", "pending"}
