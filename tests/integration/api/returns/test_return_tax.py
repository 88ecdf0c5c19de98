"""A received return of an order placed on a tax calculation is refunded with the tax of
the units returned (each its share of its line's tax) and that tax is reversed at Stripe
Tax once. The API, the steps and the database are real; Stripe (payments and tax) is
the sandbox, through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fulfillment.states import OrderStatus as S
from pipelines.common import SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.refunds import process_refund
from tests.support.returns import ask_return, receive
from tests.support.sandbox import RunningSandbox, running_sandbox
from tests.support.steps import advance, new_product, order
from tests.support.storefront import admin_token, bearer, customer_token, order_body
from tests.support.taxed import (
    put_on_calculation,
    refunded_by_stripe,
    refunds_of,
    tax_deps,
    transaction,
    transaction_tax,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def deps(engine, settings, sandbox):
    return tax_deps(engine, settings, sandbox)


async def test_a_received_return_refunds_and_reverses_the_tax_of_the_units_returned(
    client, deps, engine, sandbox
):
    # Given a customer's delivered order of 2 mugs (tax 2.22) and a plate (tax 0.71),
    # placed on a tax calculation and captured
    token = await customer_token(client)
    mug, plate = new_product(engine, on_hand=5), new_product(engine, on_hand=5, price="8.00")
    placed = await client.post("/v1/orders", json=order_body((mug, 2), (plate, 1)),
                               headers=bearer(token))  # fmt: skip
    order_id = (await placed.json())["id"]
    put_on_calculation(deps, engine, order_id)
    advance(deps, order_id, to=S.SHIPPED)
    assert capture_payment(deps, order_id) == SUCCESS
    advance(deps, order_id, to=S.DELIVERED)

    # When one mug is returned and received, and its refund's message runs twice
    asked = await ask_return(client, token, order_id, (mug, 1))
    assert asked.status == 201, await asked.text()
    admin = await admin_token(client, engine)
    received = await receive(client, admin, (await asked.json())["id"], (mug, 1, "restock"))
    assert received.status == 200, await received.text()
    refund_id = (await received.json())["refund_id"]
    assert process_refund(deps, refund_id) == SUCCESS
    process_refund(deps, refund_id)

    # Then the mug was refunded with its share of the line's tax (222 / 2), and that tax
    # reversed at Stripe Tax once
    (refund,) = refunds_of(engine, order_id)
    assert (refund.source, refund.amount, refund.tax_amount) == ("return", 1250 + 111, 111)
    assert refunded_by_stripe(sandbox, order(engine, order_id).payment_intent_id) == 1361
    reversal = transaction(sandbox, refund.tax_reversal_id)
    assert reversal.reference == f"refund_{refund_id}"
    assert transaction_tax(sandbox, reversal.id) == -111
    assert order(engine, order_id).tax_reversed_amount == 111
