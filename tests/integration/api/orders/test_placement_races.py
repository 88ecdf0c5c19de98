"""Two order writers (two API processes, or the two group-commit writers of one) meet on
an Idempotency-Key: one batch holds the key's lock inside its transaction, its order not
yet committed, while the other batch runs (``place_orders.before_commit``)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.orders.placement import OrderWriter
from api.shared.context import ENGINE
from api.shared.errors import ApiError
from fulfillment.models import IdempotencyKey, Order
from tests.support.interleave import hold
from tests.support.placements import placement
from tests.support.storefront import add_product, order_body, register


def orders(db) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).select_from(Order))


async def test_a_key_held_by_another_batch_is_409_and_then_replays_that_batchs_order(client, db):
    # Given one writer's batch holding key "k", its order written but not committed
    ann = uuid.UUID((await register(client))["id"])
    mug = add_product(db)
    body = order_body((mug, 1))
    first, second = (OrderWriter(client.app[ENGINE], writers=1) for _ in range(2))
    try:
        with hold("place_orders.before_commit") as point:
            held = asyncio.create_task(first.place(placement(ann, body, key="k")))
            await point.wait_reached_async()

            # When another writer's batch asks for the same key, beside another key
            same, other = await asyncio.gather(
                second.place(placement(ann, body, key="k")),
                second.place(placement(ann, body, key="other")),
                return_exceptions=True,
            )

            # Then the same key is told to wait (nothing of its own written), the
            # other key is not held up by the first batch
            assert isinstance(same, ApiError) and same.code == "idempotency_key_in_use"
            assert other[0] == 201
            assert orders(db) == 1
            point.release()
            placed = await held

        # and once the first batch commits, the retry replays its order
        retry = await second.place(placement(ann, body, key="k"))
    finally:
        await first.close()
        await second.close()
    assert placed[0] == 201 and retry == (201, placed[1], True)
    assert orders(db) == 2
    with Session(db) as session:
        keys = session.scalars(select(IdempotencyKey.key).order_by(IdempotencyKey.key)).all()
    assert keys == ["k", "other"]
