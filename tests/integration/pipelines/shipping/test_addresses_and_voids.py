"""Addresses the carrier refuses, and labels bought for goods that will not ship: the API,
the steps and ``fulfillment verify`` on a real PostgreSQL, with the EasyPost gateway
talking to the sandbox through the official SDK (payments and mail are in-memory
doubles: their own tests are elsewhere)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from api.app import create_app
from fulfillment import messages as m
from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.models import LabelVoid, Order, OrderEvent, OutboxMessage, Shipment
from fulfillment.settings import Settings
from fulfillment.states import OrderStatus as S
from integrations.easypost_gateway import EasyPostCarrier, build_easypost_carrier
from monitoring import metrics
from pipelines.actors import run_steps
from pipelines.deps import Deps
from pipelines.operations.invariants import check_all
from pipelines.outcome import FAILED, SKIPPED, SUCCESS
from pipelines.payments.payment import request_payment
from pipelines.shipping.labels import settle_label_void, void_label
from pipelines.shipping.ship import ship_order
from pipelines.stock.reservation import reserve_inventory
from sandbox.easypost.refunds import REFUND_SETTLE_SECONDS
from tests.support.fakes import FakeMailer, FakePayments
from tests.support.interleave import hold, in_thread
from tests.support.sandbox import (
    FAST_RETRIES,
    TEST_TIMEOUT,
    RunningSandbox,
    running_sandbox,
    wired_to,
)
from tests.support.storefront import add_product, admin_token, bearer, customer_token
from workers.sweeper import redrive_label_voids, redrive_stalled_orders

#: EasyPost's own test addresses, in our shape.
GOOD = {"name": "Ada Lovelace", "line1": "417 Montgomery Streat", "city": "SF",
        "state": "CA", "postal_code": "94104", "country": "US"}  # fmt: skip
BAD = {**GOOD, "line1": "1 Undeliverable Lane"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def wired(settings: Settings, sandbox: RunningSandbox) -> Settings:
    """The test settings, with EasyPost (and Stripe, SendGrid) at the sandbox."""
    return wired_to(settings, sandbox)


@pytest.fixture
def engine(db: Engine, wired: Settings) -> Iterator[Engine]:
    engine = create_sync_db_engine(wired, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def carrier(wired: Settings) -> EasyPostCarrier:
    return build_easypost_carrier(wired, timeout=TEST_TIMEOUT * 5, policy=FAST_RETRIES)


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def deps(engine, wired, carrier, mailer) -> Deps:
    return Deps(sessions=sync_session_factory(engine), payments=FakePayments(), mailer=mailer,
                carrier=carrier, settings=wired)  # fmt: skip


@pytest.fixture
async def client(aiohttp_client, wired: Settings, db):
    return await aiohttp_client(create_app(wired))


# --- helpers ---------------------------------------------------------------------------


async def place(client, engine: Engine, token: str, address: dict) -> str:
    product = add_product(engine, on_hand=5)
    body = {"items": [{"product_id": str(product), "quantity": 2}],
            "shipping_address": address, "payment_method": "pm_card_visa"}  # fmt: skip
    response = await client.post("/v1/orders", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


def packed(deps: Deps, order_id: str) -> None:
    """Reserved, charged and packed: the label is next."""
    reserve_inventory(deps, order_id)
    request_payment(deps, order_id)
    assert status(deps, order_id) == S.FULFILLING


def status(deps: Deps, order_id: str) -> S:
    with deps.sessions() as session:
        return S(session.get(Order, uuid.UUID(order_id)).status)


def steps_of(engine: Engine, order_id: str) -> list[tuple[str, str | None, str]]:
    with Session(engine) as session:
        events = session.scalars(select(OrderEvent).where(OrderEvent.order_id == uuid.UUID(order_id))
                                 .order_by(OrderEvent.id))  # fmt: skip
        return [(e.step, e.to_status, e.outcome) for e in events]


def queued(engine: Engine, message: tuple[str, str], **kwargs: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(
            OutboxMessage.actor_name == message[0], OutboxMessage.kwargs.contains(kwargs)))  # fmt: skip


def voids_counted(outcome: str) -> float:
    return metrics.label_voids_total.labels(outcome)._value.get()


# --- POST /v1/addresses/verify ---------------------------------------------------------


async def test_verify_answers_deliverable_corrected_and_undeliverable(client):
    token = await customer_token(client)

    # A correctable address: deliverable, as the carrier corrected it
    response = await client.post("/v1/addresses/verify", json=GOOD, headers=bearer(token))
    assert response.status == 200, await response.text()
    verdict = await response.json()
    assert verdict["deliverable"] is True and verdict["problems"] == []
    assert verdict["address"] == {"name": "Ada Lovelace", "line1": "417 MONTGOMERY ST",
                                  "city": "SAN FRANCISCO", "state": "CA",
                                  "postal_code": "94104-1129", "country": "US"}  # fmt: skip

    # The corrected address verifies as it is
    again = await client.post("/v1/addresses/verify", json=verdict["address"],
                              headers=bearer(token))  # fmt: skip
    assert (await again.json())["address"] == verdict["address"]

    # An undeliverable one: 200 with the problems by field, in our field names
    response = await client.post("/v1/addresses/verify", json=BAD, headers=bearer(token))
    assert response.status == 200
    verdict = await response.json()
    assert verdict["deliverable"] is False and verdict["address"] is None
    assert [(p["code"], p["field"]) for p in verdict["problems"]] == [
        ("E.ADDRESS.NOT_FOUND", "address")]  # fmt: skip

    # Malformed input is a 422 naming the field, and no token is a 401
    missing = await client.post("/v1/addresses/verify", json={**GOOD, "line1": ""},
                                headers=bearer(token))  # fmt: skip
    assert missing.status == 422
    assert (await missing.json())["error"]["details"]["fields"][0]["field"] == "line1"
    assert (await client.post("/v1/addresses/verify", json=GOOD)).status == 401


# --- address_invalid: the customer fixes it, or an operator overrides ---------------------


async def test_an_undeliverable_order_waits_the_customer_fixes_it_and_it_ships(
    client, engine, deps, mailer, sandbox
):
    # Given a customer's order to an address the carrier cannot deliver to
    token = await customer_token(client)
    order_id = await place(client, engine, token, BAD)

    # When its one message runs: reserved, charged, packed, then the label is refused
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id) == FAILED

    # Then it waits in address_invalid, nothing refunded, and the customer is told why
    assert status(deps, order_id) == S.ADDRESS_INVALID
    assert queued(engine, m.REFUND_PAYMENT) == 0
    (mail,) = [mail for mail in mailer.sent if mail.kind == "address_invalid"]
    assert mail.data["problems"][0]["code"] == "E.ADDRESS.NOT_FOUND"
    assert sandbox.shipments(reference=order_id) == []

    # When the customer sends another undeliverable address, nothing changes
    path = f"/v1/orders/{order_id}/shipping_address"
    refused = await client.patch(path, json={**BAD, "line1": "2 Undeliverable Lane"},
                                 headers=bearer(token))  # fmt: skip
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "address_undeliverable"
    assert status(deps, order_id) == S.ADDRESS_INVALID
    # and a stranger cannot touch the order
    stranger = await customer_token(client)
    assert (await client.patch(path, json=GOOD, headers=bearer(stranger))).status == 404

    # When the customer fixes it
    fixed = await client.patch(path, json=GOOD, headers=bearer(token))
    assert fixed.status == 200, await fixed.text()
    body = await fixed.json()

    # Then the corrected address is kept and the order goes back to fulfilling, its
    # label message queued
    assert body["status"] == S.FULFILLING and body["shipping_address"]["line1"] == (
        "417 MONTGOMERY ST")  # fmt: skip
    assert queued(engine, m.SHIP_ORDER, order_id=order_id) == 1

    # and when that message runs, the label is bought for the corrected address
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS
    assert status(deps, order_id) == S.SHIPPED
    (shipment,) = sandbox.shipments(reference=order_id)
    assert shipment["to_address"]["street1"] == "417 MONTGOMERY ST"
    # and once shipped, the address can no longer change
    late = await client.patch(path, json=GOOD, headers=bearer(token))
    assert late.status == 409


async def test_an_operator_override_ships_the_address_as_it_is(client, engine, deps, sandbox):
    # Given an order waiting in address_invalid
    token = await customer_token(client)
    order_id = await place(client, engine, token, BAD)
    run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert status(deps, order_id) == S.ADDRESS_INVALID
    path = f"/v1/admin/orders/{order_id}/address-override"
    assert (await client.post(path, headers=bearer(token))).status == 403

    # When an operator says to ship it as it is
    admin = await admin_token(client, engine)
    response = await client.post(path, headers=bearer(admin))
    assert response.status == 200, await response.text()

    # Then the timeline records the operator, and the label is bought, unverified
    assert (await response.json())["status"] == S.FULFILLING
    override = [e for e in steps_of(engine, order_id) if e[0] == "address_override"]
    assert override == [("address_override", S.FULFILLING, "success")]
    with Session(engine) as session:
        event = session.scalar(select(OrderEvent).where(OrderEvent.step == "address_override"))
        assert event.details["as_is"] is True and uuid.UUID(event.details["admin"])
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS
    (shipment,) = sandbox.shipments(reference=order_id)
    assert shipment["to_address"]["street1"] == "1 Undeliverable Lane"
    # and a second override finds nothing to override
    assert (await client.post(path, headers=bearer(admin))).status == 409


# --- label voids -------------------------------------------------------------------------


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


async def test_the_sweeper_asks_the_carrier_again_and_a_deliverable_address_ships(
    client, engine, deps, sandbox
):
    # Given an order waiting in address_invalid
    token = await customer_token(client)
    order_id = await place(client, engine, token, BAD)
    run_steps(deps, m.RECHECK_ADDRESS, order_id=order_id)  # nothing to recheck yet
    run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert status(deps, order_id) == S.ADDRESS_INVALID

    # When the sweeper finds it past its stage's deadline, it sends the recheck message
    assert redrive_stalled_orders(engine, stall=timedelta(0)) >= 1
    assert queued(engine, m.RECHECK_ADDRESS, order_id=order_id) == 1

    # and while the address is still undeliverable, the recheck leaves it waiting
    assert run_steps(deps, m.RECHECK_ADDRESS, order_id=order_id) == SKIPPED
    assert ("recheck_address", S.ADDRESS_INVALID, "still_invalid") in steps_of(engine, order_id)

    # When the address is one the carrier accepts (here: written straight to the row)
    with Session(engine) as session, session.begin():
        session.get(Order, uuid.UUID(order_id)).shipping_address = dict(GOOD)

    # Then the recheck sends it back to fulfilling and the same message buys the label
    assert run_steps(deps, m.RECHECK_ADDRESS, order_id=order_id) == SUCCESS
    assert status(deps, order_id) == S.SHIPPED
    (shipment,) = sandbox.shipments(reference=order_id)
    assert shipment["to_address"]["street1"] == "417 MONTGOMERY ST"


# --- what changes while a label is being bought -------------------------------------------


def shipment_bought(sandbox: RunningSandbox) -> int:
    return len([r for r in sandbox.requests("easypost") if r["path"].endswith("/buy")])


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
        assert session.get(Shipment, uuid.UUID(order_id)).shipment_id == bought.shipment_id
    assert queued(engine, m.VOID_LABEL, order_id=order_id) == 0
