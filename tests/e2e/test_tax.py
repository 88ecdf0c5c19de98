"""Tax through the whole system: orders placed on checkout quotes by the real API are
captured at shipment by the worker processes, which record each order's sale at Stripe
Tax (the sandbox) once; an operator's shipping refund reverses the shipping's tax; and
``fulfillment verify`` agrees with Stripe Tax."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
import requests
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Order, Refund
from tests.e2e.test_merchant_webhooks import admin_headers
from tests.e2e.test_order_saga import verify_clean
from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.taxed import NEW_YORK
from tests.support.traffic import _customer

ORDERS = 3


async def quoted_orders(api: str, product: uuid.UUID, count: int) -> list[str]:
    """``count`` orders of 2 units, each on a quote to New York and its cheapest option."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        headers = {"Authorization": f"Bearer {await _customer(http, api)}"}
        items = [{"product_id": str(product), "quantity": 2}]
        placed = []
        for _ in range(count):
            async with http.post(f"{api}/v1/checkout/quotes", headers=headers,
                                 json={"items": items, "shipping_address": NEW_YORK}) as answer:  # fmt: skip
                assert answer.status == 201, await answer.text()
                quote = await answer.json()
            body = {"items": items, "shipping_address": NEW_YORK, "payment_method": "pm_card_visa",
                    "quote_id": quote["id"],
                    "shipping_option_id": quote["shipping_options"][0]["id"]}  # fmt: skip
            async with http.post(f"{api}/v1/orders", json=body, headers=headers) as answer:
                assert answer.status == 201, await answer.text()
                placed.append((await answer.json())["id"])
        return placed


def refund_shipping(system, order_id: str) -> dict:
    headers = {**admin_headers(system), "Idempotency-Key": uuid.uuid4().hex}
    answer = requests.post(f"{system.api_url}/v1/admin/orders/{order_id}/refunds",
                           json={"shipping": True}, headers=headers, timeout=30)  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()


def orders(db, ids: list[str]) -> list[Order]:
    with Session(db) as session:
        return list(session.scalars(select(Order).where(Order.id.in_(map(uuid.UUID, ids)))))


@pytest.mark.slow
def test_quoted_orders_have_their_tax_recorded_once_and_verify_agrees(system, db):
    # Given orders placed on quotes, each with shipping and New York's tax
    product = add_product(db, on_hand=20)
    placed = asyncio.run(quoted_orders(system.api_url, product, ORDERS))

    # When the system takes them to the end
    statuses = system.wait_all_terminal(expected=ORDERS, timeout=180)
    assert statuses == {"delivered": ORDERS}

    # Then each was captured with its tax, and its sale is at Stripe Tax, once
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": system.sandbox_url})
    for order in orders(db, placed):
        assert order.tax_amount > 0 and order.amount_captured == order.total_amount
        sale = client.v1.tax.transactions.retrieve(order.tax_transaction_id)
        assert (sale.type, sale.reference) == ("transaction", f"order_{order.id}")

    # When an operator refunds one order's shipping
    first = orders(db, placed[:1])[0]
    refund = refund_shipping(system, str(first.id))
    assert refund["tax_amount"] == first.shipping_tax_amount > 0

    # Then the workers refund it and reverse the shipping's tax
    def reversed_() -> Refund | None:
        with Session(db) as session:
            row = session.get(Refund, uuid.UUID(refund["id"]))
            return row if row.tax_reversal_id else None

    kept = wait_until(reversed_, timeout=60, what="the shipping refund's tax reversed")
    reversal = client.v1.tax.transactions.retrieve(kept.tax_reversal_id)
    assert reversal.shipping_cost.amount_tax == -first.shipping_tax_amount
    verify_clean(system)
