"""Pairs of writers from the concurrency map (``docs/concurrency.md``) that meet on one
row, each run with one writer held at a named point (``tests.support.interleave``)
while the other runs. These are the pairs whose lock already serializes them: the
tests pin that it does, so a change that drops the lock fails here, not in production.
The races that lost money or sessions have their own tests beside their features."""

from __future__ import annotations

import asyncio

import pytest

from fulfillment.states import OrderStatus as S
from pipelines.deps import Deps
from pipelines.stock.reservation import reserve_inventory
from tests.support.interleave import hold, in_thread, until_waiting, waiting_on_lock
from tests.support.steps import new_customer, new_product, place_orders, status, stock
from tests.support.storefront import admin_token, bearer


@pytest.fixture
def steps_deps(deps: Deps) -> Deps:
    """The step tests' deps (``tests/integration/conftest.py``): a real engine, the
    provider fakes, the deps of a worker."""
    return deps


async def test_a_stock_count_below_a_reservation_in_flight_waits_for_it_and_is_refused(
    client, steps_deps, engine
):
    # Given 5 units and an order for 4 whose reservation is written but not committed
    product = new_product(engine, on_hand=5)
    (order,) = place_orders(engine, new_customer(engine), (product, 4))
    token = await admin_token(client, engine)
    with hold("reserve_inventory.before_commit") as point:
        reserving = in_thread(lambda: reserve_inventory(steps_deps, order))
        await point.wait_reached_async()
        # When an admin counts 2 on hand meanwhile: the count waits on the inventory row
        before = await asyncio.to_thread(waiting_on_lock, engine)
        counting = asyncio.create_task(
            client.put(f"/v1/products/{product}/stock", json={"on_hand": 2}, headers=bearer(token))
        )
        await until_waiting(engine, before)
        point.release()
        await asyncio.to_thread(reserving.result, 10)
        response = await counting
    # Then the count sees the 4 reserved units and is refused; nothing is oversold
    assert response.status == 409, await response.text()
    assert (await response.json())["error"]["code"] == "stock_below_reserved"
    assert status(engine, order) == S.RESERVED
    assert stock(engine, product) == (5, 4)


async def test_a_reservation_behind_a_lower_stock_count_reserves_against_the_new_count(
    client, steps_deps, engine
):
    # Given 5 units, an order for 4, and an admin's count of 2 held before its commit
    product = new_product(engine, on_hand=5)
    (order,) = place_orders(engine, new_customer(engine), (product, 4))
    token = await admin_token(client, engine)
    with hold("set_stock.before_commit") as point:
        counting = asyncio.create_task(
            client.put(f"/v1/products/{product}/stock", json={"on_hand": 2}, headers=bearer(token))
        )
        await point.wait_reached_async()
        # When the reservation runs meanwhile: it waits on the counted inventory row
        before = await asyncio.to_thread(waiting_on_lock, engine)
        reserving = in_thread(lambda: reserve_inventory(steps_deps, order))
        await until_waiting(engine, before)
        point.release()
        response = await counting
        await asyncio.to_thread(reserving.result, 10)
    # Then the reservation sees 2 on hand, not 5: the order is rejected, nothing oversold
    assert response.status == 200, await response.text()
    assert status(engine, order) == S.REJECTED
    assert stock(engine, product) == (2, 0)
