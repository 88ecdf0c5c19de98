"""A merchant event of an order placed on a checkout quote (issue 24): the event's order,
rendered from the row the trigger copied, shows the subtotal, the shipping, the tax and
the total the customer paid, and the carrier and service paid for, as the order
resource does. The quote and the order go through the real app, its Stripe Tax and
EasyPost SDKs against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.app import create_app
from api.shared.context import SETTINGS
from tests.integration.api.checkout.test_quotes import NEW_YORK, quote
from tests.support.merchant_webhooks import deliveries, register, run_step, signed_in, step_deps
from tests.support.sandbox import RunningSandbox, running_sandbox, wired_to
from tests.support.storefront import add_product

#: What the order resource and the event show of an order's money and shipping.
AMOUNTS = ("subtotal", "subtotal_amount", "shipping", "shipping_amount", "tax", "tax_amount",
           "total", "total_amount", "shipping_carrier", "shipping_service")  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
async def wired(aiohttp_client, settings, sandbox, db):
    """The app with Stripe, EasyPost and SendGrid at the sandbox."""
    return await aiohttp_client(create_app(wired_to(settings, sandbox)))


async def test_the_event_of_a_quoted_order_carries_its_four_amounts(
    wired, admin, db, settings, receiver
):
    # Given a merchant endpoint, and a customer's quote for 2 x 12.50 and 1 x 8.00 to New York
    await register(wired, admin, receiver.url, ["order.created"])
    customer = signed_in(db, wired.app[SETTINGS], "customer")
    token = customer["Authorization"].removeprefix("Bearer ")
    mug, plate = add_product(db, price="12.50"), add_product(db, price="8.00")
    code, q = await quote(wired, token, [(mug, 2), (plate, 1)])
    assert code == 201, q
    option = q["shipping_options"][1]

    # When the order is placed on its second option and the event delivered
    body = {"items": [{"product_id": str(mug), "quantity": 2},
                      {"product_id": str(plate), "quantity": 1}],
            "shipping_address": NEW_YORK, "payment_method": "pm_card_visa",
            "quote_id": q["id"], "shipping_option_id": option["id"]}  # fmt: skip
    placed = await wired.post("/v1/orders", json=body, headers=customer)
    assert placed.status == 201, await placed.text()
    order = await placed.json()
    [delivery] = deliveries(db)
    assert await run_step(step_deps(db, settings), delivery.id) == "success"

    # Then the event's order shows what the customer paid, as the order resource does
    [got] = receiver.received
    shown = got.event["data"]["object"]
    assert {k: shown[k] for k in AMOUNTS} == {k: order[k] for k in AMOUNTS}
    assert (shown["subtotal_amount"], shown["shipping_amount"], shown["tax_amount"]) == (
        3300, option["shipping_amount"], option["tax_amount"])  # fmt: skip
    assert shown["total_amount"] == option["total_amount"] == 3300 + option["shipping_amount"] + (
        option["tax_amount"])  # fmt: skip
    assert option["shipping_amount"] > 0 and option["tax_amount"] > 0
    assert (shown["shipping_carrier"], shown["shipping_service"]) == (
        option["carrier"], option["service"])  # fmt: skip
