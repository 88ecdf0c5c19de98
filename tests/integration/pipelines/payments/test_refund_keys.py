"""Two writers on one order's money (issue 21, finding 7): an operator's refund key
spelled like the saga's own (the compensation's, a return's) never stands for it. Each
test asserts what Stripe (the in-memory double, whose search lags as Stripe's does)
holds, not only our rows."""

from __future__ import annotations

import pytest

from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.payments.compensation import refund_payment
from pipelines.payments.refunds import process_refund
from tests.support.money import deps_capturing, given_back, refund_rows
from tests.support.returns import ask_return, delivered_order, receive
from tests.support.steps import advance, api_order, cancel, order
from tests.support.storefront import admin_token, bearer, customer_token


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return deps_capturing(engine, settings, payments, mailer, carrier, at="order")


async def test_an_operator_key_spelled_compensation_never_stands_for_the_compensation(
    client, deps, engine, payments
):
    # Given a paid order an operator refunded 1.00 of, with the key "compensation"
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    admin = await admin_token(client, engine)
    made = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                             headers={**bearer(admin), "Idempotency-Key": "compensation"})  # fmt: skip
    assert made.status == 201, await made.text()
    assert process_refund(deps, (await made.json())["id"]) == SUCCESS

    # When the customer cancels and the compensation refunds the rest
    assert (await cancel(client, order_id, token)).status == 200
    assert refund_payment(deps, order_id) == SUCCESS

    # Then Stripe gave everything back: the operator's 1.00 and the compensation's rest
    (charge,) = payments.money_taken
    assert given_back(payments, charge.id) == charge.amount_received
    kept = order(engine, order_id)
    assert kept.amount_refunded == kept.amount_captured
    assert sorted(refund_rows(engine, order_id)) == [
        ("compensation", "compensation", "succeeded"),
        ("operator", "compensation", "succeeded"),
    ]


async def test_an_operator_key_spelled_like_a_returns_refund_never_skips_that_refund(
    client, engine, settings, payments, mailer, carrier
):
    deps = deps_capturing(engine, settings, payments, mailer, carrier, at="shipment")
    # Given a delivered order with a return requested, and an operator's goodwill refund
    # of 1.00 whose key happens to be spelled as the return's own refund key
    order_id, token, mug, _ = await delivered_order(client, deps, engine)
    asked = await ask_return(client, token, order_id, (mug, 1))
    return_id = (await asked.json())["id"]
    admin = await admin_token(client, engine)
    made = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                             headers={**bearer(admin), "Idempotency-Key": f"return_{return_id}"})  # fmt: skip
    assert made.status == 201, await made.text()
    assert process_refund(deps, (await made.json())["id"]) == SUCCESS

    # When the warehouse receives the mug
    received = await receive(client, admin, return_id, (mug, 1, "restock"))

    # Then the receipt is answered, and its refund is made at Stripe beside the operator's
    assert received.status == 200, await received.text()
    assert process_refund(deps, (await received.json())["refund_id"]) == SUCCESS
    (charge,) = payments.money_taken
    assert given_back(payments, charge.id) == 100 + 1250
    assert order(engine, order_id).amount_refunded == 100 + 1250
