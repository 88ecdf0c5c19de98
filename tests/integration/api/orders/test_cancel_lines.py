"""Cancelling some of an order's units (``POST /v1/orders/{id}/cancel`` with ``lines``, and
the desk's cancel) on the real app and database with the real steps: the units' stock
goes back where it was held (its package shrinks or is dropped), and the money follows:
before the capture the capture takes less, before the charge the charge asks less, after
the capture the units are refunded by their lines. What cannot be cancelled is refused
with nothing changed (Sylius #4845, Vendure #569; Spartacus #6097 cancelled the whole
order instead)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_app
from fulfillment.locks import LOCK_LABEL_PURCHASE
from fulfillment.models import Refund
from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.refunds import process_refund
from pipelines.stock.reservation import reserve_inventory
from tests.support.interleave import hold, in_thread, until_waiting, waiting_on_lock
from tests.support.locations import at, new_location, product_at, shipped_from, stock_violations
from tests.support.steps import advance, make_deps, order, status
from tests.support.storefront import admin_token, bearer, customer_token, order_body

PRICE = 1250  # minor units of one unit of every product here (12.50)


async def place(client, token: str, *lines) -> str:
    response = await client.post("/v1/orders", json=order_body(*lines), headers=bearer(token))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def cancel(client, token: str, order_id: str, *lines, headers=None):
    body = {"lines": [{"product_id": str(p), "quantity": q} for p, q in lines]}
    response = await client.post(f"/v1/orders/{order_id}/cancel", json=body,
                                 headers={**bearer(token), **(headers or {})})  # fmt: skip
    return response.status, await response.json()


@pytest.fixture
def at_shipment(engine, settings, payments, mailer, carrier):
    """A worker's deps with the card captured when the parcel ships (the default)."""
    return make_deps(engine, settings, payments, mailer, carrier)


def captured(payments, order_id: str) -> int:
    (intent,) = [i for i in payments.intents.values() if i.order_id == order_id]
    return intent.amount_received


async def test_before_the_capture_a_cancelled_unit_is_released_and_never_captured(
    client, at_shipment, engine, payments
):
    # Given an order for 3 mugs and 1 cup, authorized and packed (captured at shipment)
    here = new_location(engine, priority=1)
    mug, cup = product_at(engine, {here: 5}), product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 3), (cup, 1))
    advance(at_shipment, order_id, to=S.FULFILLING)
    assert at(engine, mug, here) == (5, 3)

    # When the customer cancels 2 of the mugs
    code, body = await cancel(client, token, order_id, (mug, 2))

    # Then the order goes on with 1 mug and 1 cup, 2 mugs' stock is free again
    assert code == 200, body
    assert body["status"] == "fulfilling" and body["amount_cancelled"] == 2 * PRICE
    assert body["cancelled_items"] == [{"product_id": str(mug), "quantity": 2}]
    assert sorted((line["product_id"], line["quantity"]) for line in body["packages"][0]["lines"]) == sorted(
        [(str(mug), 1), (str(cup), 1)])  # fmt: skip
    assert at(engine, mug, here) == (5, 1) and stock_violations(engine) == []
    # and when it ships, the capture takes the total less the cancelled units, once
    advance(at_shipment, order_id, to=S.SHIPPED)
    assert capture_payment(at_shipment, order_id) == SUCCESS
    assert captured(payments, order_id) == 2 * PRICE and payments.captures[order_id] == 1
    assert order(engine, order_id).amount_captured == 2 * PRICE
    assert shipped_from(engine, mug) == {here: 1} and stock_violations(engine) == []


async def test_a_line_cancelled_whole_drops_its_package(client, at_shipment, engine):
    # Given an order whose mugs come from one location and its cup from another
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug, cup = product_at(engine, {first: 2}), product_at(engine, {second: 1})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 2), (cup, 1))
    advance(at_shipment, order_id, to=S.FULFILLING)
    assert len(order(engine, order_id).allocation) == 2

    # When the cup is cancelled, its package goes, and the cup is free at its location
    code, body = await cancel(client, token, order_id, (cup, 1))

    assert code == 200, body
    assert [p["location_id"] for p in body["packages"]] == [str(first)]
    assert at(engine, cup, second) == (1, 0) and at(engine, mug, first) == (2, 2)
    assert stock_violations(engine) == []


async def test_before_the_reservation_a_cancelled_unit_is_never_reserved_nor_charged(
    client, deps, engine, payments
):
    here = new_location(engine, priority=1)
    mug = product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 3))

    code, body = await cancel(client, token, order_id, (mug, 1))
    assert code == 200 and body["status"] == "pending", body

    # When the saga runs (captured at order), it reserves 2 and charges for 2
    advance(deps, order_id, to=S.FULFILLING)
    assert at(engine, mug, here) == (5, 2)
    assert captured(payments, order_id) == 2 * PRICE
    assert stock_violations(engine) == []


async def test_after_the_capture_cancelled_units_are_refunded_by_their_lines(
    client, deps, engine, payments
):
    # Given an order for 3 mugs captured at order, packed and waiting for its label
    here = new_location(engine, priority=1)
    mug = product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 3))
    advance(deps, order_id, to=S.FULFILLING)

    # When one is cancelled, a refund by that line is accepted and its Stripe call queued
    code, body = await cancel(client, token, order_id, (mug, 1))
    assert code == 200 and body["amount_cancelled"] == 0, body
    with Session(engine) as session:
        (refund,) = session.scalars(select(Refund).where(Refund.order_id == uuid.UUID(order_id)))
    assert (refund.source, refund.amount, refund.status) == ("cancel", PRICE, "pending")
    assert refund.lines == [{"product_id": str(mug), "quantity": 1, "amount": PRICE}]
    process_refund(deps, str(refund.id))

    # Then Stripe refunded that unit, the order still ships the other two
    assert payments.refunds[order_id].amount == PRICE
    assert order(engine, order_id).amount_refunded == PRICE
    assert at(engine, mug, here) == (5, 2)
    advance(deps, order_id, to=S.SHIPPED)
    assert shipped_from(engine, mug) == {here: 2} and stock_violations(engine) == []
    # and an operator cannot refund the cancelled unit again by its line
    admin = await admin_token(client, engine)
    again = await client.post(f"/v1/admin/orders/{order_id}/refunds",
                              json={"lines": [{"product_id": str(mug), "quantity": 3}]},
                              headers={**bearer(admin), "Idempotency-Key": "r1"})  # fmt: skip
    assert again.status == 409, await again.text()


async def test_cancelling_every_remaining_unit_cancels_the_order(client, at_shipment, engine):
    here = new_location(engine, priority=1)
    mug, cup = product_at(engine, {here: 5}), product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 2), (cup, 1))
    advance(at_shipment, order_id, to=S.FULFILLING)
    assert (await cancel(client, token, order_id, (mug, 1)))[0] == 200

    code, body = await cancel(client, token, order_id, (mug, 1), (cup, 1))

    assert code == 200 and body["status"] == "cancelled", body
    assert at(engine, mug, here) == (5, 0) and at(engine, cup, here) == (5, 0)
    assert stock_violations(engine) == []


async def test_what_cannot_be_cancelled_is_refused_and_nothing_changes(
    client, at_shipment, engine, aiohttp_client, settings
):
    here = new_location(engine, priority=1)
    mug, cup = product_at(engine, {here: 5}), product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 2))
    advance(at_shipment, order_id, to=S.FULFILLING)

    # More units than remain; a product the order does not hold
    code, body = await cancel(client, token, order_id, (mug, 3))
    assert code == 409 and body["error"]["code"] == "cancel_exceeds_order", body
    assert body["error"]["details"]["cancellable_quantity"] == 2
    code, body = await cancel(client, token, order_id, (cup, 1))
    assert code == 422 and body["error"]["code"] == "not_in_order", body
    # Bodies that are not a cancel
    for bad in ({"lines": []}, {"lines": [{"product_id": str(mug), "quantity": 0}]},
                {"lines": [{"product_id": str(mug), "quantity": "1"}]}, {"lines": None}, []):  # fmt: skip
        response = await client.post(
            f"/v1/orders/{order_id}/cancel", json=bad, headers=bearer(token)
        )
        assert response.status == 422, (bad, await response.text())
    assert status(engine, order_id) == S.FULFILLING and at(engine, mug, here) == (5, 2)
    assert order(engine, order_id).cancelled_lines == []

    # A shipped order
    advance(at_shipment, order_id, to=S.SHIPPED)
    code, body = await cancel(client, token, order_id, (mug, 1))
    assert code == 409 and body["error"]["code"] == "order_not_cancellable"

    # An automatic charge that may be in flight (captured at order, reserved)
    at_order = await aiohttp_client(
        create_app(settings.model_copy(update={"payment_capture": "order"}))
    )
    other = await place(at_order, token, (cup, 2))
    assert reserve_inventory(at_shipment, other) == SUCCESS  # reserved, the charge is next
    code, body = await cancel(at_order, token, other, (cup, 1))
    assert code == 409 and body["error"]["code"] == "payment_in_progress", body
    assert order(engine, other).cancelled_lines == [] and at(engine, cup, here) == (5, 2)


async def test_the_desk_cancels_lines_once_per_idempotency_key(client, at_shipment, engine):
    here = new_location(engine, priority=1)
    mug = product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 3))
    advance(at_shipment, order_id, to=S.FULFILLING)
    admin = await admin_token(client, engine)
    body = {"lines": [{"product_id": str(mug), "quantity": 1}]}
    headers = {**bearer(admin), "Idempotency-Key": "cancel-one-mug"}

    first = await client.post(f"/v1/admin/orders/{order_id}/cancel", json=body, headers=headers)
    second = await client.post(f"/v1/admin/orders/{order_id}/cancel", json=body, headers=headers)
    other = await client.post(f"/v1/admin/orders/{order_id}/cancel",
                              json={"lines": [{"product_id": str(mug), "quantity": 2}]},
                              headers=headers)  # fmt: skip

    assert first.status == second.status == 200, await first.text()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert (await first.json()) == (await second.json())
    assert other.status == 422 and (await other.json())["error"]["code"] == "idempotency_key_reused"
    assert order(engine, order_id).amount_cancelled == PRICE and at(engine, mug, here) == (5, 2)


async def test_a_reservation_behind_a_line_cancel_reserves_only_what_remains(
    client, at_shipment, engine
):
    # Given a pending order for 3 mugs, and a cancel of 2 held before its commit
    here = new_location(engine, priority=1)
    mug = product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 3))
    with hold("cancel_lines.before_commit") as point:
        cancelling = asyncio.create_task(cancel(client, token, order_id, (mug, 2)))
        await point.wait_reached_async()
        # When the reservation runs meanwhile, it waits on the order's row
        before = await asyncio.to_thread(waiting_on_lock, engine)
        reserving = in_thread(lambda: reserve_inventory(at_shipment, order_id))
        await until_waiting(engine, before)
        point.release()
        code, _ = await cancelling
        outcome = await asyncio.to_thread(reserving.result, 10)

    # Then it reserves the one mug left, not three
    assert code == 200 and outcome == SUCCESS
    assert at(engine, mug, here) == (5, 1) and stock_violations(engine) == []


async def test_a_line_cancel_while_the_label_is_being_bought_is_409_at_once(
    client, at_shipment, engine
):
    here = new_location(engine, priority=1)
    mug = product_at(engine, {here: 5})
    token = await customer_token(client)
    order_id = await place(client, token, (mug, 3))
    advance(at_shipment, order_id, to=S.FULFILLING)

    with engine.connect() as purchase, purchase.begin():  # as ship_order holds it
        purchase.execute(LOCK_LABEL_PURCHASE, {"order_id": order_id})
        code, body = await cancel(client, token, order_id, (mug, 1))

    assert code == 409 and body["error"]["code"] == "label_being_bought", body
    assert order(engine, order_id).cancelled_lines == [] and at(engine, mug, here) == (5, 3)
