"""What the customer really pays, through the whole system (real API, sandbox, workers,
scheduler, the real Stripe and EasyPost SDKs): a quote with three shipping options, an
order on the second cheapest, a PaymentIntent for subtotal + shipping + tax, the label
bought for the service paid for, the tax recorded at capture, a partial refund of one
line whose tax share is reversed, then the shipping's refund (its tax reversed, once),
and e-mails that show the four amounts; ``verify`` finds nothing wrong."""

from __future__ import annotations

import uuid

import pytest
import requests
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Order, Refund, Shipment
from tests.e2e.test_customer_emails import SENDGRID_AUTH
from tests.e2e.test_locations import call, customer_headers, intent_of, refunded_at_stripe
from tests.e2e.test_merchant_webhooks import admin_headers
from tests.support.chaos import verify_clean
from tests.support.storefront import add_product
from tests.support.system import wait_until

NEW_YORK = {"name": "Grace Hopper", "line1": "350 5th Ave", "city": "New York",
            "state": "NY", "postal_code": "10118", "country": "US"}  # fmt: skip
SERVICES = "USPS:GroundAdvantage,USPS:Priority,UPS:Ground"


def order_row(db, order_id: str) -> Order:
    with Session(db) as session:
        return session.get(Order, uuid.UUID(order_id))


def reversed_refund(db, refund_id: str) -> Refund | None:
    """The refund once its tax is reversed at Stripe Tax, else None."""
    with Session(db) as session:
        row = session.get(Refund, uuid.UUID(refund_id))
        return row if row.tax_reversal_id else None


def mails_of(system, order_id: str) -> dict[str, dict]:
    query = {"query": f"unique_args['order_id']=\"{order_id}\"", "limit": 20}
    found = requests.get(f"{system.sandbox_url}/sendgrid/v3/messages", params=query,
                         headers=SENDGRID_AUTH, timeout=10).json()["messages"]  # fmt: skip
    return {m["custom_args"]["kind"]: m["rendered"] for m in found if m.get("rendered")}


@pytest.mark.slow
@pytest.mark.system_env(SHIPPING_SERVICES=SERVICES)
def test_a_quoted_order_pays_shipping_and_tax_and_a_refund_reverses_its_share(system, db):
    api, admin = system.api_url, admin_headers(system)
    mug = add_product(db, name="Blue Mug", price="12.50")
    plate = add_product(db, name="Side Plate", price="8.00")
    customer = customer_headers(api)
    items = [{"product_id": str(mug), "quantity": 2}, {"product_id": str(plate), "quantity": 1}]

    # Given a quote with three options, cheapest first
    quote = call("POST", f"{api}/v1/checkout/quotes", customer,
                 {"items": items, "shipping_address": NEW_YORK}, status=201)  # fmt: skip
    options = quote["shipping_options"]
    assert [(o["carrier"], o["service"]) for o in options] == [
        ("USPS", "GroundAdvantage"), ("USPS", "Priority"), ("UPS", "Ground")]  # fmt: skip
    chosen = options[1]
    goods_tax = 222 + 71  # 25.00 and 8.00 at New York's 8.875 %
    assert chosen["tax_amount"] > goods_tax  # New York taxes shipping too

    # When the customer orders on the second cheapest
    order = call("POST", f"{api}/v1/orders", customer | {"Idempotency-Key": uuid.uuid4().hex},
                 {"items": items, "shipping_address": NEW_YORK, "payment_method": "pm_card_visa",
                  "quote_id": quote["id"], "shipping_option_id": chosen["id"]}, status=201)  # fmt: skip
    total = 3300 + chosen["shipping_amount"] + chosen["tax_amount"]
    assert order["total_amount"] == chosen["total_amount"] == total

    # Then it is delivered, its label bought for the service paid for
    wait_until(lambda: order_row(db, order["id"]).status == "delivered", timeout=90,
               what="the order delivered", on_fail=system.order_statuses)  # fmt: skip
    with Session(db) as session:
        (label,) = session.scalars(
            select(Shipment).where(Shipment.order_id == uuid.UUID(order["id"]))
        )
        assert (label.carrier, label.service) == ("USPS", "Priority")
    # and Stripe captured the whole total, once, and recorded its tax once
    intent = intent_of(system, order["id"])
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", total, total)
    placed = order_row(db, order["id"])
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": system.sandbox_url})
    sale = client.v1.tax.transactions.retrieve(placed.tax_transaction_id)
    assert sale.type == "transaction" and sale.reference.endswith(order["id"])
    assert sum(line.amount_tax for line in
               client.v1.tax.transactions.line_items.list(sale.id).data) == goods_tax  # fmt: skip

    # When an operator refunds the plate
    refund = call("POST", f"{api}/v1/admin/orders/{order['id']}/refunds",
                  admin | {"Idempotency-Key": uuid.uuid4().hex},
                  {"lines": [{"product_id": str(plate), "quantity": 1}], "reason": "chipped"},
                  status=201)  # fmt: skip

    # Then the plate and its tax come back, and Stripe Tax reverses that tax
    assert (refund["amount_minor"], refund["tax_amount"]) == (871, 71)
    wait_until(lambda: refunded_at_stripe(system, order["id"]) == [871], timeout=60,
               what="the plate refunded")  # fmt: skip
    row = wait_until(lambda: reversed_refund(db, refund["id"]), timeout=30,
                     what="the plate's tax reversed")  # fmt: skip
    reversal = client.v1.tax.transactions.retrieve(row.tax_reversal_id)
    assert reversal.type == "reversal" and reversal.reversal.original_transaction == sale.id
    assert [(line.amount, line.amount_tax) for line in
            client.v1.tax.transactions.line_items.list(reversal.id).data] == [(-800, -71)]  # fmt: skip
    assert order_row(db, order["id"]).tax_reversed_amount == 71

    # When the operator refunds the shipping too, it and its tax come back, once
    shipping = call("POST", f"{api}/v1/admin/orders/{order['id']}/refunds",
                    admin | {"Idempotency-Key": uuid.uuid4().hex}, {"shipping": True},
                    status=201)  # fmt: skip
    shipping_tax = placed.shipping_tax_amount
    assert shipping_tax == chosen["tax_amount"] - goods_tax
    assert (shipping["amount_minor"], shipping["tax_amount"], shipping["shipping_amount"]) == (
        chosen["shipping_amount"] + shipping_tax, shipping_tax, chosen["shipping_amount"])  # fmt: skip
    kept = wait_until(lambda: reversed_refund(db, shipping["id"]), timeout=60,
                      what="the shipping's tax reversed")  # fmt: skip
    assert client.v1.tax.transactions.retrieve(kept.tax_reversal_id).shipping_cost.amount_tax == (
        -shipping_tax)  # fmt: skip
    call(
        "POST",
        f"{api}/v1/admin/orders/{order['id']}/refunds",
        admin | {"Idempotency-Key": uuid.uuid4().hex},
        {"shipping": True},
        status=409,
    )
    assert order_row(db, order["id"]).tax_reversed_amount == 71 + shipping_tax

    # and the e-mails show what was paid and what came back
    mails = wait_until(lambda: (lambda m: m if "refunded" in m else None)(
        mails_of(system, order["id"])), timeout=60, what="the refund e-mail")  # fmt: skip
    money = {amount: f"{amount / 100:.2f} USD" for amount in
             (3300, chosen["shipping_amount"], chosen["tax_amount"], total, 871)}  # fmt: skip
    for kind in ("order_confirmed", "shipped"):
        for amount in (3300, chosen["shipping_amount"], chosen["tax_amount"], total):
            assert money[amount] in mails[kind]["plain"], (kind, amount)
    assert money[871] in mails["refunded"]["plain"]
    verify_clean(system)
