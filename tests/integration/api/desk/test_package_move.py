"""Moving an unshipped package to another location (``POST /v1/admin/orders/{id}/
packages/{package_id}/move``) on the real app and database: the units are checked and
reserved at the destination and released at the source in one transaction, or nothing
changes (Medusa #16488 moved a reservation without checking the destination); the
order then ships from there; and the writers it meets (a reservation for the same
units, a cancel, a label purchase) are serialized, each held at a named point."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.locks import LOCK_LABEL_PURCHASE
from fulfillment.models import OrderEvent
from fulfillment.packages import package_id
from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.stock.reservation import reserve_inventory
from tests.support.interleave import hold, in_thread, until_waiting, waiting_on_lock
from tests.support.locations import (
    at,
    count,
    new_location,
    product_at,
    shipped_from,
    stock_violations,
)
from tests.support.steps import advance, new_customer, order, place_orders, status
from tests.support.storefront import admin_token, bearer


async def move(client, token: str, order_id: str, package, location) -> tuple[int, dict]:
    response = await client.post(f"/v1/admin/orders/{order_id}/packages/{package}/move",
                                 json={"location_id": str(location)}, headers=bearer(token))  # fmt: skip
    return response.status, await response.json()


def reserved_at(deps, engine, location, elsewhere=None, quantity: int = 2) -> tuple[str, uuid.UUID]:
    """An order for ``quantity`` of a new product, reserved (whole) at ``location``, with
    ``elsewhere`` units at other locations."""
    mug = product_at(engine, {location: quantity, **(elsewhere or {})})
    (order_id,) = place_orders(engine, new_customer(engine), (mug, quantity))
    assert reserve_inventory(deps, order_id) == SUCCESS
    assert {a["location_id"] for a in order(engine, order_id).allocation} == {str(location)}
    return order_id, mug


def moves_noted(engine, order_id: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == uuid.UUID(order_id), OrderEvent.step == "move_package"))  # fmt: skip


async def test_a_package_moves_to_a_location_that_has_its_units_and_ships_from_there(
    client, deps, engine
):
    # Given an order reserved at its first location, and 5 units at a second one
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    order_id, mug = reserved_at(deps, engine, first)
    count(engine, mug, second, 5)
    admin = await admin_token(client, engine)

    # When an operator moves its package to the second location
    code, body = await move(client, admin, order_id, package_id(order_id, first), second)

    # Then the order shows one package, at the second location, with the same lines
    assert code == 200, body
    assert [(p["id"], p["location_id"], p["lines"]) for p in body["packages"]] == [
        (str(package_id(order_id, second)), str(second), [{"product_id": str(mug), "quantity": 2}])]  # fmt: skip
    # and the units moved in one transaction: released at the first, reserved at the second
    assert at(engine, mug, first) == (2, 0) and at(engine, mug, second) == (5, 2)
    assert moves_noted(engine, order_id) == 1 and stock_violations(engine) == []
    # and the order ships from the second location
    advance(deps, order_id, to=S.SHIPPED)
    assert shipped_from(engine, mug) == {second: 2}
    assert stock_violations(engine) == []


async def test_a_destination_short_of_the_units_is_409_and_nothing_changes(client, deps, engine):
    # Given an order for 2 reserved at one location, and 1 unit at another
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    order_id, mug = reserved_at(deps, engine, first)
    count(engine, mug, second, 1)
    admin = await admin_token(client, engine)

    code, body = await move(client, admin, order_id, package_id(order_id, first), second)

    assert code == 409 and body["error"]["code"] == "insufficient_stock", body
    assert body["error"]["details"]["product_id"] == str(mug)
    assert at(engine, mug, first) == (2, 2) and at(engine, mug, second) == (1, 0)
    assert {a["location_id"] for a in order(engine, order_id).allocation} == {str(first)}
    assert moves_noted(engine, order_id) == 0 and stock_violations(engine) == []


async def test_what_cannot_be_moved_or_named_is_refused_with_nothing_changed(client, deps, engine):
    first, closed = new_location(engine, priority=1), new_location(engine, active=False)
    germany = new_location(engine, ships_to=["DE"])
    order_id, mug = reserved_at(deps, engine, first, {closed: 9, germany: 9})
    admin = await admin_token(client, engine)
    package = package_id(order_id, first)

    # An inactive destination, or one that does not ship to the order's country (GB)
    for location in (closed, germany):
        code, body = await move(client, admin, order_id, package, location)
        assert code == 409 and body["error"]["code"] == "location_not_eligible", body
    # a location that does not exist; a body that is not one
    code, body = await move(client, admin, order_id, package, uuid.uuid4())
    assert code == 422 and body["error"]["code"] == "unknown_location"
    for bad in ({"location_id": 7}, {"location_id": str(first), "extra": 1}, [], {}):
        response = await client.post(f"/v1/admin/orders/{order_id}/packages/{package}/move",
                                      json=bad, headers=bearer(admin))  # fmt: skip
        assert response.status == 422, (bad, await response.text())
    # a package the order does not have, or no such order
    assert (await move(client, admin, order_id, uuid.uuid4(), closed))[0] == 404
    assert (await move(client, admin, str(uuid.uuid4()), package, closed))[0] == 404
    # not an admin
    customer = await client.post(f"/v1/admin/orders/{order_id}/packages/{package}/move",
                                 json={"location_id": str(closed)})  # fmt: skip
    assert customer.status == 401
    # and nothing moved
    assert at(engine, mug, first) == (2, 2) and moves_noted(engine, order_id) == 0
    # while moving a package to where it is answers the order, unchanged
    code, body = await move(client, admin, order_id, package, first)
    assert code == 200 and body["packages"][0]["location_id"] == str(first)


async def test_a_shipped_package_cannot_move(client, deps, engine):
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    order_id, mug = reserved_at(deps, engine, first, {second: 5})
    advance(deps, order_id, to=S.SHIPPED)
    admin = await admin_token(client, engine)

    code, body = await move(client, admin, order_id, package_id(order_id, first), second)

    assert code == 409 and body["error"]["code"] == "package_not_movable", body
    assert body["error"]["details"]["status"] == "shipped"
    assert at(engine, mug, second) == (5, 0) and shipped_from(engine, mug) == {first: 2}


async def test_a_reservation_for_the_destinations_last_units_waits_for_a_move_and_is_refused(
    client, deps, engine
):
    # Given an order reserved at one location, 2 units left at another, and a second
    # customer's pending order that only the second location could fill
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    order_id, mug = reserved_at(deps, engine, first, {second: 2})
    (other,) = place_orders(engine, new_customer(engine), (mug, 2))
    admin = await admin_token(client, engine)

    # When the move holds both locations' rows before its commit, and the reservation runs
    with hold("move_package.before_commit") as point:
        moving = asyncio.create_task(
            move(client, admin, order_id, package_id(order_id, first), second)
        )
        await point.wait_reached_async()
        before = await asyncio.to_thread(waiting_on_lock, engine)
        reserving = in_thread(lambda: reserve_inventory(deps, other))
        await until_waiting(engine, before)
        point.release()
        code, body = await moving
        outcome = await asyncio.to_thread(reserving.result, 10)

    # Then the reservation waited, saw the second location's units taken and the first's
    # freed, and took those: every unit is held once, none beyond a location's count
    assert code == 200, body
    assert outcome == SUCCESS and status(engine, other) == S.RESERVED
    assert {a["location_id"] for a in order(engine, other).allocation} == {str(first)}
    assert at(engine, mug, first) == (2, 2) and at(engine, mug, second) == (2, 2)
    assert stock_violations(engine) == []


async def test_a_cancel_during_a_move_waits_and_gives_the_units_back_where_they_went(
    client, deps, engine
):
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    order_id, mug = reserved_at(deps, engine, first, {second: 5})
    admin = await admin_token(client, engine)

    with hold("move_package.before_commit") as point:
        moving = asyncio.create_task(
            move(client, admin, order_id, package_id(order_id, first), second)
        )
        await point.wait_reached_async()
        before = await asyncio.to_thread(waiting_on_lock, engine)
        cancelling = asyncio.create_task(
            client.post(f"/v1/admin/orders/{order_id}/cancel", headers=bearer(admin)))  # fmt: skip
        await until_waiting(engine, before)
        point.release()
        code, _ = await moving
        cancelled = await cancelling

    # Then the cancel ran on the moved order: the units go back at the second location
    assert code == 200 and cancelled.status == 200, await cancelled.text()
    assert status(engine, order_id) == S.CANCELLED
    assert at(engine, mug, first) == (2, 0) and at(engine, mug, second) == (5, 0)
    assert stock_violations(engine) == []


async def test_a_move_while_the_label_is_being_bought_is_409_at_once(client, deps, engine):
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    order_id, mug = reserved_at(deps, engine, first, {second: 5})
    admin = await admin_token(client, engine)

    # Given the label purchase lock held, as ship_order holds it while EasyPost answers
    with engine.connect() as purchase, purchase.begin():
        purchase.execute(LOCK_LABEL_PURCHASE, {"order_id": order_id})
        code, body = await move(client, admin, order_id, package_id(order_id, first), second)

    assert code == 409 and body["error"]["code"] == "label_being_bought", body
    assert at(engine, mug, first) == (2, 2) and at(engine, mug, second) == (5, 0)
