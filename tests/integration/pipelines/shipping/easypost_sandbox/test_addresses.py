"""Addresses the carrier refuses: the API's verification, the order that waits in
``address_invalid`` until the customer fixes the address or an operator overrides it,
and the sweeper asking the carrier again; the API and the steps on a real PostgreSQL,
with the EasyPost gateway talking to the sandbox through the official SDK."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Order, OrderEvent
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.outcome import FAILED, SKIPPED, SUCCESS
from tests.support.shipping import BAD, GOOD, place, queued, status, steps_of
from tests.support.storefront import admin_token, bearer, customer_token
from workers.sweeper import redrive_stalled_orders


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
