"""A batch whose products its writer has read before is written in one round trip
(``GUARDED_WRITE``): the statement itself claims each key and checks each line against
the catalogue, and whatever it does not write is decided again on fresh reads. Each
test warms a writer with one order first, then changes the world under it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from psycopg.errors import ForeignKeyViolation
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.orders import placement as placement_module
from api.orders.placement import OrderWriter
from api.shared.context import ENGINE
from api.shared.errors import ApiError
from api.shared.idempotency import lock_id
from fulfillment.models import IdempotencyKey, Order, OrderLine
from tests.support.interleave import hold
from tests.support.placements import placement
from tests.support.storefront import add_product, order_body, register


def count(db, model) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).select_from(model))


async def warm(client, db, *, price: str = "12.50") -> tuple[OrderWriter, uuid.UUID, uuid.UUID]:
    """A writer that has read one product (by placing an order for it), its customer,
    and the product."""
    customer = uuid.UUID((await register(client))["id"])
    mug = add_product(db, price=price)
    writer = OrderWriter(client.app[ENGINE], writers=1)
    first = await writer.place(placement(customer, order_body((mug, 1)), key="warm"))
    assert first[0] == 201
    return writer, customer, mug


@pytest.fixture
def no_reads(monkeypatch):
    """Makes the read-first path fail from then on: what is placed after went the
    one-trip way."""

    async def refuse(*_args, **_kwargs):
        raise AssertionError("the batch was read first")

    return lambda: monkeypatch.setattr(placement_module, "_decide", refuse)


async def test_a_known_product_is_written_without_the_read_round_trip(client, db, no_reads):
    # Given a writer that has read the product (and no way left to read it again)
    writer, ann, mug = await warm(client, db)
    no_reads()

    # When orders for it arrive together, one keyed and one not
    try:
        keyed, plain = await asyncio.gather(
            writer.place(placement(ann, order_body((mug, 2)), key="k1")),
            writer.place(placement(ann, order_body((mug, 1)))),
        )
    finally:
        await writer.close()

    # Then both were written from what it had read, each with its rows and its answer
    assert keyed[0] == plain[0] == 201
    assert count(db, Order) == 3 and count(db, OrderLine) == 3
    with Session(db) as session:
        stored = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "k1"))
        assert stored.response_body == keyed[1]
        assert session.get(Order, uuid.UUID(keyed[1]["id"])).total_amount == 2500


async def test_a_price_changed_since_the_read_is_the_price_the_order_gets(client, db):
    # Given a writer that read the mug at 12.50, and the mug now at 14.00
    writer, ann, mug = await warm(client, db)
    with db.begin() as conn:
        conn.execute(text("UPDATE products SET price = 14.00 WHERE id = :id"), {"id": mug})

    # When an order for it arrives
    try:
        placed = await writer.place(placement(ann, order_body((mug, 1)), key="after"))
        # and another one after that (the writer has read the new price)
        again = await writer.place(placement(ann, order_body((mug, 1)), key="again"))
    finally:
        await writer.close()

    # Then it is priced, answered and stored at today's price, once
    assert placed[1]["total_amount"] == again[1]["total_amount"] == 1400
    with Session(db) as session:
        line = session.scalar(
            select(OrderLine).where(OrderLine.order_id == uuid.UUID(placed[1]["id"]))
        )
        assert str(line.unit_price) == "14.00" and line.unit_amount == 1400
    assert count(db, Order) == 3


async def test_a_product_taken_off_sale_since_the_read_is_refused(client, db):
    # Given a writer that read the mug, and the mug no longer for sale
    writer, ann, mug = await warm(client, db)
    with db.begin() as conn:
        conn.execute(text("UPDATE products SET is_active = false WHERE id = :id"), {"id": mug})

    # When an order for it arrives
    try:
        refused = await asyncio.gather(
            writer.place(placement(ann, order_body((mug, 1)), key="late")), return_exceptions=True
        )
    finally:
        await writer.close()

    # Then it is refused as on a fresh read, and nothing of it is stored
    assert isinstance(refused[0], ApiError) and refused[0].code == "product_unavailable"
    assert count(db, Order) == 1 and count(db, IdempotencyKey) == 1


async def test_a_stored_key_is_replayed_and_a_repeated_one_is_in_use(client, db):
    # Given a writer that read the mug while placing the order under key "warm"
    writer, ann, mug = await warm(client, db)
    with Session(db) as session:
        first = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "warm"))

    # When the same request comes again, twice in one batch
    try:
        again, twice = await asyncio.gather(
            writer.place(placement(ann, order_body((mug, 1)), key="warm")),
            writer.place(placement(ann, order_body((mug, 1)), key="warm")),
            return_exceptions=True,
        )
    finally:
        await writer.close()

    # Then the first is the stored order again, the second told the key is in use
    assert again == (201, first.response_body, True)
    assert isinstance(twice, ApiError) and twice.code == "idempotency_key_in_use"
    assert count(db, Order) == 1


async def test_a_key_held_by_another_one_trip_batch_is_409_then_replays(client, db):
    # Given two writers that have read the mug, one of them holding key "k" in its
    # uncommitted one-trip write
    writer, ann, mug = await warm(client, db)
    other, _, _ = await warm(client, db)
    body = order_body((mug, 1))
    other_catalogue = other._catalogue
    other_catalogue.keep(writer._catalogue.entries)  # it has read this mug too
    try:
        with hold("place_orders.before_commit") as point:
            held = asyncio.create_task(writer.place(placement(ann, body, key="k")))
            await point.wait_reached_async()

            # When the other writer's batch asks for the same key, beside another key
            same, fresh = await asyncio.gather(
                other.place(placement(ann, body, key="k")),
                other.place(placement(ann, body, key="fresh")),
                return_exceptions=True,
            )

            # Then the same key is told to wait, the other is written
            assert isinstance(same, ApiError) and same.code == "idempotency_key_in_use"
            assert fresh[0] == 201
            point.release()
            placed = await held

        # and once the first commits, the retry replays its order
        retry = await other.place(placement(ann, body, key="k"))
    finally:
        await writer.close()
        await other.close()
    assert placed[0] == 201 and retry == (201, placed[1], True)
    with Session(db) as session:
        assert session.scalar(
            select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.key == "k")
        ) == 1  # fmt: skip


async def test_a_one_trip_batch_that_fails_is_decided_again_order_by_order(client, db):
    # Given a writer that read the mug
    writer, ann, mug = await warm(client, db)
    bob = uuid.UUID((await register(client))["id"])

    # When a batch arrives with an order for a customer who does not exist
    try:
        first, gone, second = await asyncio.gather(
            writer.place(placement(ann, order_body((mug, 1)), key="a")),
            writer.place(placement(uuid.uuid4(), order_body((mug, 1)))),
            writer.place(placement(bob, order_body((mug, 1)))),
            return_exceptions=True,
        )
    finally:
        await writer.close()

    # Then the bad one fails on its own and the others are written
    assert isinstance(gone, ForeignKeyViolation)
    assert first[0] == second[0] == 201
    assert count(db, Order) == 3


async def test_a_key_another_session_holds_is_not_written_by_the_one_trip(client, db):
    # Given a writer that read the mug, and key "busy" held by another session
    writer, ann, mug = await warm(client, db)
    with db.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id(ann, "busy")})
        try:
            # When orders under it and under another key arrive together
            busy, free = await asyncio.gather(
                writer.place(placement(ann, order_body((mug, 1)), key="busy")),
                writer.place(placement(ann, order_body((mug, 1)), key="free")),
                return_exceptions=True,
            )
        finally:
            await writer.close()
            holder.rollback()

    # Then the held key is told to wait and only the other is written
    assert isinstance(busy, ApiError) and busy.code == "idempotency_key_in_use"
    assert free[0] == 201
    assert count(db, Order) == 2
