"""The sweeper re-drives what was dropped, once per stall period, expires reservations
past their deadline, and its messages carry the request that placed the order."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import OutboxMessage, WebhookEvent
from fulfillment.notifications import intent_insert
from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED
from pipelines.operations.attention import mark_needs_attention
from pipelines.payments.payment import expire_reservation
from tests.support.fakes import PROCESSING_METHOD
from tests.support.steps import (
    given_order,
    new_customer,
    new_product,
    outbox,
    place_orders,
    stock,
    time_passes,
)
from workers.sweeper import sweep


def test_the_sweeper_redrives_what_was_dropped_once_per_stall_period(deps, engine):
    stall = timedelta(minutes=2)
    # Given a stalled pending order, an order with a refund due, an e-mail never sent, an
    # unprocessed webhook, and an order waiting for an operator, all untouched for 10 min
    customer = new_customer(engine)
    product = new_product(engine, on_hand=5)
    stalled, refund, waiting = place_orders(engine, customer, (product, 1), count=3)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE orders SET status = 'cancelled', refund_due = true WHERE id = :id"),
            {"id": refund},
        )
        mail_id = conn.execute(intent_insert("welcome", user_id=customer)).scalar_one()
        event_id = conn.execute(
            WebhookEvent.__table__.insert().returning(WebhookEvent.id),
            {"provider": "stripe", "event_id": "evt_lost", "event_type": "payment_intent.succeeded",
             "payload": {}},
        ).scalar_one()  # fmt: skip
    mark_needs_attention(deps, waiting, step="reserve_inventory", attempt=13, error="boom")
    time_passes(engine, minutes=10)
    # and a pending order placed just now
    (fresh,) = place_orders(engine, customer, (product, 1))

    def queued() -> tuple[int, ...]:
        return (
            outbox(engine, m.RESERVE_INVENTORY, order_id=stalled),
            outbox(engine, m.REFUND_PAYMENT, order_id=refund),
            outbox(engine, m.SEND_NOTIFICATION, notification_id=str(mail_id)),
            outbox(engine, m.PROCESS_WEBHOOK, event_id=str(event_id)),
        )

    # When the sweeper runs
    first = sweep(engine, stall=stall)

    # Then each dropped thing is sent again, once, and nothing else
    assert {k: v for k, v in first.items() if v} == {
        "stalled_orders": 1, "refunds": 1, "notifications": 1, "webhooks": 1}  # fmt: skip
    assert queued() == (1, 1, 1, 1)
    assert outbox(engine, m.RESERVE_INVENTORY, order_id=fresh) == 0
    assert outbox(engine, m.RESERVE_INVENTORY, order_id=waiting) == 0

    # When it runs again at once
    second = sweep(engine, stall=stall)

    # Then nothing is sent twice
    assert set(second.values()) == {0}
    assert queued() == (1, 1, 1, 1)

    # When the stall period has passed again
    time_passes(engine, minutes=3)
    sweep(engine, stall=stall)

    # Then they are sent once more
    assert queued() == (2, 2, 2, 2)
    assert outbox(engine, m.RESERVE_INVENTORY, order_id=waiting) == 0


def test_the_sweeper_expires_a_reservation_past_its_deadline(deps, engine):
    stall = timedelta(minutes=2)
    # Given an order whose processing payment never cleared, its reservation long expired
    order_id, product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )
    ttl_minutes = deps.settings.reservation_ttl_seconds / 60
    time_passes(engine, minutes=ttl_minutes + 5)

    # When the scheduler sweeps every 30 s for the next 10 minutes
    for _ in range(20):
        sweep(engine, stall=stall)
        time_passes(engine, minutes=0.5)

    # Then the order's expiry was queued, and running it frees the stock
    assert outbox(engine, m.EXPIRE_RESERVATION, order_id=order_id) >= 1
    assert expire_reservation(deps, order_id) == FAILED
    assert stock(engine, product) == (5, 0)


def test_the_sweepers_messages_carry_the_request_that_placed_the_order(deps, engine):
    stall = timedelta(minutes=2)
    # Given orders placed by two requests: one stalled pending, one cancelled with its
    # refund due, and one whose processing payment outlived its reservation; an e-mail
    # about the first never sent and a webhook about it never processed
    customer = new_customer(engine)
    product = new_product(engine, on_hand=5)
    # (the expiring one first: a reservation pass would take the pending ones with it)
    expiring, _ = given_order(deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD)
    stalled, refund = place_orders(engine, customer, (product, 1), count=2, request_id="req-a")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE orders SET status = 'cancelled', refund_due = true WHERE id = :id"),
            {"id": refund},
        )
        conn.execute(text("UPDATE orders SET request_id = 'req-b' WHERE id = :id"),
                     {"id": expiring})  # fmt: skip
        mail_id = conn.execute(
            intent_insert("order_confirmed", user_id=customer, order_id=uuid.UUID(stalled))
        ).scalar_one()
        event_id = conn.execute(
            WebhookEvent.__table__.insert().returning(WebhookEvent.id),
            {"provider": "stripe", "event_id": "evt_lost", "event_type": "payment_intent.succeeded",
             "payload": {}, "order_id": uuid.UUID(stalled)},
        ).scalar_one()  # fmt: skip
    time_passes(engine, minutes=deps.settings.reservation_ttl_seconds / 60 + 10)

    # When the sweeper runs, in a context bound to a request of its own
    with structlog.contextvars.bound_contextvars(request_id="req-sweeper"):
        counts = sweep(engine, stall=stall)

    # Then every message it queued carries the request that placed its order
    assert {k: v for k, v in counts.items() if v} == {
        "stalled_orders": 1, "expired_reservations": 1, "refunds": 1, "notifications": 1,
        "webhooks": 1}  # fmt: skip
    with Session(engine) as session:
        rows = session.execute(select(OutboxMessage.actor_name, OutboxMessage.kwargs,
                                      OutboxMessage.request_id)).all()  # fmt: skip
    assert sorted((actor, sorted(kwargs.items()), request) for actor, kwargs, request in rows) == sorted([
        ("reserve_inventory", [("order_id", stalled)], "req-a"),
        ("refund_payment", [("order_id", refund)], "req-a"),
        ("expire_reservation", [("order_id", expiring)], "req-b"),
        ("send_notification", [("notification_id", str(mail_id))], "req-a"),
        ("process_webhook", [("event_id", str(event_id))], "req-a"),
    ])  # fmt: skip
