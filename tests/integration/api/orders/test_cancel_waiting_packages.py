"""Cancelling units of an order some of whose packages have left (``partially_shipped``,
or waiting for an operator from there), on the real app and database with the real
steps: only the units still waiting may go, their stock goes back at their own location,
the money follows by their lines (the first parcel captured it all), a capture still due
refuses the cancel rather than taking the old amount, and a cancel that leaves no
package waiting settles the order as its parcels stand. An operator may still move a
waiting package (Magento MSI #1913/#1728: wrong quantities after a partial shipment;
Spartacus #6097 cancelled the whole order)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Refund, Shipment
from fulfillment.states import OrderStatus as S
from integrations.ports import TrackerStatus as T
from pipelines.actors import run_steps
from pipelines.common import SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.refunds import process_refund
from pipelines.shipping.tracking import apply_tracking
from tests.support.fakes import transient
from tests.support.interleave import hold, in_thread
from tests.support.locations import (
    at,
    count,
    new_location,
    product_at,
    shipped_from,
    stock_violations,
)
from tests.support.steps import make_deps, order, status, transitions
from tests.support.storefront import admin_token, bearer, customer_token, order_body

PRICE = 1250  # minor units of one unit of every product here (12.50)


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    """Capture at shipment (the default): the first parcel captures."""
    return make_deps(engine, settings, payments, mailer, carrier)


async def half_shipped(client, deps, engine, carrier, *, capture: bool = True):
    """An order for 3 mugs (one location) and 2 cups (another) whose first parcel left and
    whose second label failed: (token, order id, {"left"|"waiting": (location, product,
    units)})."""
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug, cup = product_at(engine, {first: 5}), product_at(engine, {second: 5})
    token = await customer_token(client)
    response = await client.post("/v1/orders", json=order_body((mug, 3), (cup, 2)),
                                 headers=bearer(token))  # fmt: skip
    assert response.status == 201, await response.text()
    order_id = (await response.json())["id"]
    carrier.fail_next("ship", transient("easypost", "buy_shipment"), after=1)
    with pytest.raises(Exception, match="service unavailable"):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert status(engine, order_id) == S.PARTIALLY_SHIPPED
    if capture:
        assert capture_payment(deps, order_id) == SUCCESS
    with Session(engine) as session:
        (left,) = session.scalars(select(Shipment.location_id).where(
            Shipment.order_id == uuid.UUID(order_id))).all()  # fmt: skip
    parts = {first: (first, mug, 3), second: (second, cup, 2)}
    waiting = second if left == first else first
    return token, order_id, {"left": parts[left], "waiting": parts[waiting]}


async def cancel(client, token: str, order_id: str, *lines):
    body = {"lines": [{"product_id": str(p), "quantity": q} for p, q in lines]} if lines else None
    response = await client.post(f"/v1/orders/{order_id}/cancel", json=body,
                                 headers=bearer(token))  # fmt: skip
    return response.status, await response.json()


def refunds_of(engine, order_id: str) -> list[Refund]:
    with Session(engine) as session:
        return session.scalars(select(Refund).where(Refund.order_id == uuid.UUID(order_id))
                               .order_by(Refund.created_at)).all()  # fmt: skip


async def test_a_waiting_packages_unit_is_cancelled_and_refunded_and_a_shipped_one_is_not(
    client, deps, engine, carrier, payments
):
    # Given an order whose first parcel left (and captured everything) and whose second waits
    token, order_id, parts = await half_shipped(client, deps, engine, carrier)
    (left_at, left_product, left_units) = parts["left"]
    (waiting_at, waiting_product, waiting_units) = parts["waiting"]
    captured = order(engine, order_id).amount_captured
    assert captured == 5 * PRICE

    # When the customer asks to cancel a unit that has left, and more than wait
    for asked in ((left_product, 1), (waiting_product, waiting_units + 1)):
        code, body = await cancel(client, token, order_id, asked)
        # Then each is refused, and nothing changed
        assert code == 409 and body["error"]["code"] == "cancel_exceeds_order", body
    assert order(engine, order_id).cancelled_lines == [] and refunds_of(engine, order_id) == []

    # When one unit of the waiting package is cancelled
    code, body = await cancel(client, token, order_id, (waiting_product, 1))

    # Then its reservation is released at its own location, its package shrinks, and the
    # unit is refunded by its line (the money was taken)
    assert code == 200 and body["status"] == "partially_shipped", body
    assert at(engine, waiting_product, waiting_at) == (5, waiting_units - 1)
    packages = {p["location_id"]: p for p in body["packages"]}
    assert packages[str(waiting_at)]["lines"] == [
        {"product_id": str(waiting_product), "quantity": waiting_units - 1}]  # fmt: skip
    assert packages[str(left_at)]["lines"] == [
        {"product_id": str(left_product), "quantity": left_units}]  # fmt: skip
    (refund,) = refunds_of(engine, order_id)
    assert (refund.source, refund.amount) == ("cancel", PRICE)
    assert process_refund(deps, str(refund.id)) == SUCCESS
    assert payments.refunds[order_id].amount == PRICE

    # And the second parcel leaves with what is left, the capture untouched
    run_steps(deps, m.SHIP_ORDER, order_id=order_id)
    assert status(engine, order_id) == S.SHIPPED
    assert shipped_from(engine, waiting_product) == {waiting_at: waiting_units - 1}
    assert shipped_from(engine, left_product) == {left_at: left_units}
    assert at(engine, waiting_product, waiting_at) == (5 - waiting_units + 1, 0)
    assert (
        payments.captures == {order_id: 1} and order(engine, order_id).amount_captured == captured
    )
    assert stock_violations(engine) == []


async def test_cancelling_what_waits_after_the_first_parcel_arrived_delivers_the_order(
    client, deps, engine, carrier, payments, mailer
):
    # Given a half-shipped order whose first parcel has arrived
    token, order_id, parts = await half_shipped(client, deps, engine, carrier)
    (left_at, _, _), (waiting_at, waiting_product, waiting_units) = parts["left"], parts["waiting"]
    with Session(engine) as session:
        code = session.scalar(select(Shipment.tracking_code).where(
            Shipment.order_id == uuid.UUID(order_id)))  # fmt: skip
    apply_tracking(deps, order_id, status=T.DELIVERED.value, code=code)
    assert status(engine, order_id) == S.PARTIALLY_SHIPPED

    # When the customer cancels without lines: what has not shipped
    code, body = await cancel(client, token, order_id)

    # Then the waiting package is gone, its stock free at its location, its units refunded
    assert code == 200, body
    assert [p["location_id"] for p in body["packages"]] == [str(left_at)]
    assert at(engine, waiting_product, waiting_at) == (5, 0)
    (refund,) = refunds_of(engine, order_id)
    assert (refund.source, refund.amount) == ("cancel", waiting_units * PRICE)
    fresh = order(engine, order_id)
    assert fresh.stock_state == "consumed"

    # And the message the cancel queued settles the order as its parcels stand: delivered,
    # once, with its mail
    for _ in range(2):
        run_steps(deps, m.SHIP_ORDER, order_id=order_id)
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.DELIVERED) == 1
    assert [m.kind for m in mailer.sent if m.order_id == order_id].count("delivered") == 1
    assert carrier.labels_bought == 1 and payments.captures == {order_id: 1}
    # and nothing is left to cancel
    code, body = await cancel(client, token, order_id)
    assert code == 409 and body["error"]["code"] == "order_not_cancellable", body
    assert stock_violations(engine) == []


async def test_a_cancel_while_the_capture_is_under_way_is_refused_not_captured_in_full(
    client, deps, engine, carrier, payments
):
    # Given a half-shipped order whose capture is at Stripe, its commit held
    token, order_id, parts = await half_shipped(client, deps, engine, carrier, capture=False)
    (_, waiting_product, waiting_units) = parts["waiting"]
    with hold("capture_payment.before_commit") as point:
        capturing = in_thread(lambda: capture_payment(deps, order_id))
        await point.wait_reached_async()

        # When the customer cancels a waiting unit meanwhile
        code, body = await cancel(client, token, order_id, (waiting_product, 1))

        # Then it is refused at once: Stripe is taking the amount as it stood
        assert code == 409 and body["error"]["code"] == "payment_in_progress", body
        point.release()
        assert await asyncio.to_thread(capturing.result, 10) == SUCCESS
    assert order(engine, order_id).cancelled_lines == []

    # And once captured, the same cancel is refunded by its line
    code, body = await cancel(client, token, order_id, (waiting_product, 1))
    assert code == 200, body
    (refund,) = refunds_of(engine, order_id)
    assert refund.amount == PRICE and order(engine, order_id).amount_captured == 5 * PRICE
    assert payments.captures == {order_id: 1}
    assert waiting_units - 1 == sum(
        line["quantity"] for p in body["packages"] for line in p["lines"]
        if line["product_id"] == str(waiting_product))  # fmt: skip


async def test_an_operator_moves_a_waiting_package_but_not_one_that_left(
    client, deps, engine, carrier
):
    # Given a half-shipped order, and a third location holding the waiting units
    _, order_id, parts = await half_shipped(client, deps, engine, carrier)
    (left_at, left_product, left_units) = parts["left"]
    (waiting_at, waiting_product, units) = parts["waiting"]
    third = new_location(engine, priority=3)
    count(engine, waiting_product, third, 4)
    admin = await admin_token(client, engine)
    body = await (await client.get(f"/v1/orders/{order_id}", headers=bearer(admin))).json()
    ids = {p["location_id"]: p["id"] for p in body["packages"]}

    async def move(package: str, to: uuid.UUID):
        response = await client.post(f"/v1/admin/orders/{order_id}/packages/{package}/move",
                                     json={"location_id": str(to)}, headers=bearer(admin))  # fmt: skip
        return response.status, await response.json()

    # When an operator moves the package that left, or the waiting one where one left
    for package, to in ((ids[str(left_at)], third), (ids[str(waiting_at)], left_at)):
        code, answer = await move(package, to)
        # Then both are refused and nothing moves
        assert code == 409 and answer["error"]["code"] == "package_not_movable", answer
    assert at(engine, waiting_product, waiting_at) == (5, units)

    # When the waiting one goes to the third location
    code, answer = await move(ids[str(waiting_at)], third)

    # Then it is reserved there and released at its old one, and it ships from there
    assert code == 200, answer
    assert at(engine, waiting_product, third) == (4, units)
    assert at(engine, waiting_product, waiting_at) == (5, 0)
    run_steps(deps, m.SHIP_ORDER, order_id=order_id)
    assert status(engine, order_id) == S.SHIPPED
    assert shipped_from(engine, waiting_product) == {third: units}
    assert shipped_from(engine, left_product) == {left_at: left_units}
    assert stock_violations(engine) == []
