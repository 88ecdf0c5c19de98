"""The parts of an order given back that Stripe Tax reverses, without I/O: the units
cancelled before the money was taken (their amount and tax, per product) and the
shipping, refunded once per order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fulfillment.line_cancellation import cancelled_unpaid
from fulfillment.refunds import NoShippingCharged, ShippingAlreadyRefunded, price_shipping


def test_units_cancelled_unpaid_give_back_their_price_and_tax_share_per_product():
    cancelled = [
        {"product_id": "mug", "quantity": 1, "amount": 1361, "tax": 111, "refunded": False},
        {"product_id": "mug", "quantity": 1, "amount": 1361, "tax": 111, "refunded": True},
        {"product_id": "plate", "quantity": 1, "amount": 800, "refunded": False},  # untaxed
        {"product_id": "mug", "quantity": 1, "amount": 1361, "tax": 111, "refunded": False},
    ]
    # those refunded were paid for: a refund by lines gives their tax back, not the sale
    assert cancelled_unpaid(cancelled) == {"mug": (2500, 222), "plate": (800, 0)}


def refund(status: str, shipping: int) -> SimpleNamespace:
    return SimpleNamespace(status=status, shipping_amount=shipping)


def test_the_shipping_is_refunded_once_with_its_tax():
    order = SimpleNamespace(shipping_amount=599, shipping_tax_amount=53)
    assert price_shipping(order, [refund("succeeded", 0)]) == (599, 53)
    # a refund that failed gave nothing back: the shipping is still refundable
    assert price_shipping(order, [refund("failed", 599)]) == (599, 53)
    for status in ("pending", "succeeded"):
        with pytest.raises(ShippingAlreadyRefunded):
            price_shipping(order, [refund(status, 599)])


def test_an_order_that_paid_no_shipping_has_none_to_refund():
    with pytest.raises(NoShippingCharged):
        price_shipping(SimpleNamespace(shipping_amount=0, shipping_tax_amount=0), [])
