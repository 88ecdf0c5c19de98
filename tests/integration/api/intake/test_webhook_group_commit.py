"""Webhook intake in groups: events that arrive together are stored in one transaction,
each answered on its own; one the database refuses fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from api.intake.providers import STORE_STRIPE, Intake, WebhookWriter, stripe_params
from fulfillment.db import create_async_db_engine
from fulfillment.models import Order, OutboxMessage, WebhookEvent
from tests.support.request_ids import placed_order


def stripe_event(event_id: str, event_type: str = "payment_intent.succeeded") -> Intake:
    return Intake(statement=STORE_STRIPE, params=stripe_params(event_id, event_type, "{}", None))


def stored(db) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent))


async def test_events_that_arrive_together_are_stored_together_each_answered(db, settings):
    engine = create_async_db_engine(settings)
    writer = WebhookWriter(engine, writers=1, max_batch=64)
    try:
        # Given 30 events delivered at once, one of them twice
        ids = [f"evt_{uuid.uuid4().hex}" for _ in range(30)]
        intakes = [stripe_event(event_id) for event_id in [*ids, ids[0]]]

        # When they are submitted together
        rows = await asyncio.gather(*(writer.submit(intake) for intake in intakes))

        # Then each new one is stored once and answered with its row; the duplicate gets none
        assert all(row is not None for row in rows[:30]) and rows[30] is None
        assert len({row[0] for row in rows[:30]}) == 30
        assert stored(db) == 30
        # in a few transactions, not thirty
        with db.connect() as conn:
            commits = conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM webhook_events"))
        assert commits <= 3
    finally:
        await writer.close()
        await engine.dispose()


async def test_an_event_the_database_refuses_fails_alone(db, settings):
    engine = create_async_db_engine(settings)
    writer = WebhookWriter(engine, writers=1, max_batch=64)
    try:
        # Given good events and one whose type the database cannot hold, sent together
        good = [stripe_event(f"evt_{uuid.uuid4().hex}") for _ in range(5)]
        bad = stripe_event(f"evt_{uuid.uuid4().hex}", event_type="x" * 300)

        # When they are submitted in one batch
        results = await asyncio.gather(*(writer.submit(i) for i in [*good, bad]),
                                       return_exceptions=True)  # fmt: skip

        # Then the good ones are stored and only the bad one failed
        assert all(not isinstance(r, BaseException) and r is not None for r in results[:5])
        assert isinstance(results[5], Exception)
        assert stored(db) == 5
    finally:
        await writer.close()
        await engine.dispose()


async def test_events_a_moment_apart_wait_for_each_other_and_share_a_commit(db, settings):
    engine = create_async_db_engine(settings)
    writer = WebhookWriter(engine, writers=1, max_batch=64, gather=0.2)
    try:
        # Given an event, and another one 20 ms later
        async def later(intake: Intake):
            await asyncio.sleep(0.02)
            return await writer.submit(intake)

        first, second = (
            stripe_event(f"evt_{uuid.uuid4().hex}"),
            stripe_event(f"evt_{uuid.uuid4().hex}"),
        )
        rows = await asyncio.gather(writer.submit(first), later(second))

        # Then both are stored, in one transaction
        assert all(rows)
        with db.connect() as conn:
            assert conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM webhook_events")) == 1
    finally:
        await writer.close()
        await engine.dispose()


@contextlib.asynccontextmanager
async def order_held_by_a_step(db, settings, *, status: str):
    """(order id, the step's connection holding its row lock, a webhook writer)."""
    order_id = placed_order(db)
    with db.connect() as conn:
        conn.execute(update(Order).where(Order.id == order_id).values(status=status))
        conn.commit()
    engine = create_async_db_engine(settings)
    writer = WebhookWriter(engine, writers=1, max_batch=64)
    try:
        with db.connect() as step:
            step.execute(text("SELECT 1 FROM orders WHERE id = :id FOR UPDATE"), {"id": order_id})
            yield order_id, step, writer
    finally:
        await writer.close()
        await engine.dispose()


def payment_event_for(order_id: str) -> Intake:
    intake = stripe_event(f"evt_{uuid.uuid4().hex}")
    intake.params["order_id"] = uuid.UUID(order_id)
    return intake


def messages_queued(db) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage))


async def test_a_payment_event_for_an_order_whose_charge_is_settling_waits_for_it(db, settings):
    # Given an order whose charge is settling: the step holds it, still reserved
    async with order_held_by_a_step(db, settings, status="reserved") as (order_id, step, writer):
        # When Stripe's event for it arrives while the step makes it paid and commits
        stored = asyncio.ensure_future(writer.submit(payment_event_for(order_id)))
        await asyncio.sleep(0.3)
        assert not stored.done()  # it waits for the step, a moment
        step.execute(update(Order).where(Order.id == order_id).values(status="fulfilling"))
        step.commit()
        row = await asyncio.wait_for(stored, timeout=5)

    # Then the step's new status decides: settled, stored done, no message
    assert row[1] == "done"
    assert messages_queued(db) == 0


async def test_a_payment_event_for_a_settled_order_a_step_holds_costs_no_message(db, settings):
    # Given a paid and packed order, locked by the step buying its label
    async with order_held_by_a_step(db, settings, status="fulfilling") as (order_id, step, writer):
        # When Stripe's payment event for it arrives
        row = await asyncio.wait_for(writer.submit(payment_event_for(order_id)), timeout=5)
        step.rollback()

    # Then it is stored as done at once, with no message: the payment was settled already
    assert row[1] == "done"
    assert messages_queued(db) == 0
