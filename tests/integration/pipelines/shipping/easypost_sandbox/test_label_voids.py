"""Labels bought for goods that will not ship are voided: after a lost commit and a cancel,
when EasyPost rejects the void, and while the label is being bought (a cancel, an
address change, a hold); the API, the steps and ``fulfillment verify`` on a real
PostgreSQL, with the EasyPost gateway talking to the sandbox through the official SDK."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import LabelVoid, Order
from fulfillment.states import OrderStatus as S
from monitoring import metrics
from pipelines.actors import run_steps
from pipelines.operations.invariants import check_all
from pipelines.outcome import SKIPPED, SUCCESS
from pipelines.shipping.labels import settle_label_void, void_label
from pipelines.shipping.ship import ship_order
from sandbox.easypost.refunds import REFUND_SETTLE_SECONDS
from tests.support.interleave import hold, in_thread
from tests.support.sandbox import RunningSandbox
from tests.support.shipments import the_shipment
from tests.support.shipping import GOOD, packed, place, queued, status, steps_of
from tests.support.storefront import admin_token, bearer, customer_token
from workers.sweeper import redrive_label_voids


async def lost_label_then_cancel(client, engine, deps, carrier, token) -> tuple[str, str]:
    """An order whose label was bought but whose commit was lost (the worker died
    between EasyPost's answer and the commit), then cancelled by its customer."""
    order_id = await place(client, engine, token, GOOD)
    packed(deps, order_id)
    label = carrier.ship(order_id=order_id, address=GOOD)
    response = await client.post(f"/v1/orders/{order_id}/cancel", headers=bearer(token))
    assert response.status == 200, await response.text()
    assert queued(engine, m.VOID_LABEL, order_id=order_id) == 1
    return order_id, label.shipment_id


def void_row(engine: Engine, shipment_id: str) -> LabelVoid:
    with Session(engine) as session:
        return session.get(LabelVoid, shipment_id)


def voids_counted(outcome: str) -> float:
    return metrics.label_voids_total.labels(outcome)._value.get()


def shipment_bought(sandbox: RunningSandbox) -> int:
    return len([r for r in sandbox.requests("easypost") if r["path"].endswith("/buy")])


async def test_a_cancel_after_a_lost_label_commit_voids_the_label_and_it_settles(
    client, engine, deps, carrier, sandbox, wired
):
    # Given a cancelled order whose label EasyPost sold but the order never recorded
    token = await customer_token(client)
    order_id, shipment_id = await lost_label_then_cancel(client, engine, deps, carrier, token)
    # fulfillment verify sees the live label
    report = check_all(wired)
    assert any(shipment_id in v and "live at the carrier" in v for v in report.violations)
    submitted, refunded = voids_counted("submitted"), voids_counted("refunded")

    # When the void message runs (twice: at-least-once delivery)
    assert [void_label(deps, order_id), void_label(deps, order_id)] == [SUCCESS, SKIPPED]

    # Then the label's refund is submitted once, and stored
    assert void_row(engine, shipment_id).status == "submitted"
    assert carrier.label_refund_status(shipment_id) == "submitted"
    assert voids_counted("submitted") == submitted + 1
    refunds = [r for r in sandbox.requests("easypost") if r["path"].endswith("/refund")]
    assert len(refunds) == 1

    # and while the carrier has not settled it, the sweeper's check changes nothing
    assert redrive_label_voids(engine, stall=timedelta(0)) == 1
    assert settle_label_void(deps, shipment_id) == SKIPPED

    # When the carrier's clock passes and the sweeper asks again
    sandbox.advance_clock(REFUND_SETTLE_SECONDS + 1)
    assert settle_label_void(deps, shipment_id) == SUCCESS

    # Then the void is refunded, once; the order stays cancelled; verify is clean of it
    row = void_row(engine, shipment_id)
    assert (row.status, row.settled_at is not None) == ("refunded", True)
    assert settle_label_void(deps, shipment_id) == SKIPPED
    assert voids_counted("refunded") == refunded + 1
    assert status(deps, order_id) == S.CANCELLED
    assert ("settle_label_void", S.CANCELLED, "void_refunded") in steps_of(engine, order_id)
    assert not any(shipment_id in v for v in check_all(wired).violations)


async def test_a_rejected_void_puts_the_order_in_front_of_an_operator(
    client, engine, deps, carrier, sandbox
):
    # Given a cancelled order's stray label, voided, which the carrier will reject
    token = await customer_token(client)
    order_id, shipment_id = await lost_label_then_cancel(client, engine, deps, carrier, token)
    assert void_label(deps, order_id) == SUCCESS
    sandbox.set_refund_outcome(shipment_id, "rejected")
    rejected = voids_counted("rejected")

    # When the carrier settles it
    sandbox.advance_clock(REFUND_SETTLE_SECONDS + 1)
    assert settle_label_void(deps, shipment_id) == SUCCESS

    # Then the order needs attention, with the reason, and the void is rejected
    assert status(deps, order_id) == S.NEEDS_ATTENTION
    with Session(engine) as session:
        order = session.get(Order, uuid.UUID(order_id))
        assert shipment_id in order.last_error and order.attention_from == S.CANCELLED
    assert void_row(engine, shipment_id).status == "rejected"
    assert voids_counted("rejected") == rejected + 1


async def test_a_cancel_with_no_label_bought_voids_nothing(client, engine, deps, sandbox):
    token = await customer_token(client)
    order_id = await place(client, engine, token, GOOD)
    packed(deps, order_id)
    await client.post(f"/v1/orders/{order_id}/cancel", headers=bearer(token))
    assert void_label(deps, order_id) == SKIPPED
    assert not [r for r in sandbox.requests("easypost") if r["path"].endswith("/refund")]


async def test_a_cancel_during_the_label_purchase_voids_the_label_bought(
    client, engine, deps, carrier, sandbox, wired
):
    # Given a packed order whose label EasyPost has just sold, its commit still to come
    token = await customer_token(client)
    order_id = await place(client, engine, token, GOOD)
    packed(deps, order_id)
    with hold("ship_order.label_bought") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        await asyncio.to_thread(point.wait_reached)

        # When the customer cancels (a hang guard only: the purchase is held for 20 s)
        response = await asyncio.wait_for(
            client.post(f"/v1/orders/{order_id}/cancel", headers=bearer(token)), 15)  # fmt: skip

        # Then the cancel is answered while the purchase is in flight, and the purchase
        # then finds the order cancelled
        assert not shipping.done()
        assert response.status == 200, await response.text()
        point.release()
        assert await asyncio.to_thread(shipping.result, 20) == SKIPPED
    assert status(deps, order_id) == S.CANCELLED
    label = carrier.find_shipment(order_id)
    assert label is not None and shipment_bought(sandbox) == 1

    # When the void messages run (the cancel's and the purchase's)
    assert queued(engine, m.VOID_LABEL, order_id=order_id) == 2
    assert [void_label(deps, order_id), void_label(deps, order_id)] == [SUCCESS, SKIPPED]

    # Then the label is given back, and verify finds no live label for the order
    assert carrier.label_refund_status(label.shipment_id) == "submitted"
    assert not any(label.shipment_id in v for v in check_all(wired).violations)


async def test_an_address_change_during_the_label_purchase_is_a_409_at_once(
    client, engine, deps, sandbox
):
    # Given a packed order whose label is being bought for its address
    token = await customer_token(client)
    order_id = await place(client, engine, token, GOOD)
    packed(deps, order_id)
    with Session(engine) as session:
        address = session.get(Order, uuid.UUID(order_id)).shipping_address
    with hold("ship_order.label_bought") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        await asyncio.to_thread(point.wait_reached)

        # When the customer changes the address (a hang guard only)
        response = await asyncio.wait_for(client.patch(
            f"/v1/orders/{order_id}/shipping_address", json={**GOOD, "name": "Grace Hopper"},
            headers=bearer(token)), 15)  # fmt: skip

        # Then the answer says so at once, and the label goes to the address it was
        # bought for
        assert not shipping.done()
        assert response.status == 409, await response.text()
        assert (await response.json())["error"]["code"] == "label_being_bought"
        point.release()
        assert await asyncio.to_thread(shipping.result, 20) == SUCCESS
    assert status(deps, order_id) == S.SHIPPED
    with Session(engine) as session:
        assert session.get(Order, uuid.UUID(order_id)).shipping_address == address


async def test_a_hold_during_the_label_purchase_ships_that_label_once_released(
    client, engine, deps, carrier, sandbox
):
    # Given a packed order whose label is being bought
    order_id = await place(client, engine, await customer_token(client), GOOD)
    packed(deps, order_id)
    admin = await admin_token(client, engine)
    with hold("ship_order.label_bought") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        await asyncio.to_thread(point.wait_reached)

        # When an operator holds the order (a hang guard only)
        response = await asyncio.wait_for(
            client.post(f"/v1/admin/orders/{order_id}/hold", headers=bearer(admin)), 15
        )

        # Then the hold is answered at once, and the purchase leaves the order held
        assert not shipping.done()
        assert response.status == 200, await response.text()
        point.release()
        assert await asyncio.to_thread(shipping.result, 20) == SKIPPED
    assert status(deps, order_id) == S.ON_HOLD
    bought = carrier.find_shipment(order_id)

    # When the operator releases it and its shipping message runs
    response = await client.post(f"/v1/admin/orders/{order_id}/release", headers=bearer(admin))
    assert response.status == 200, await response.text()
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS

    # Then it ships with the label bought during the hold: one label, none to void
    assert status(deps, order_id) == S.SHIPPED
    assert shipment_bought(sandbox) == 1
    with Session(engine) as session:
        assert the_shipment(session, uuid.UUID(order_id)).shipment_id == bought.shipment_id
    assert queued(engine, m.VOID_LABEL, order_id=order_id) == 0
