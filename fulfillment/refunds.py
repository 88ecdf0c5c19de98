"""Refunds by lines: what giving back some of an order's units costs, in one rule.

A unit is refunded at the price it was ordered with its share of the line's tax
(``fulfillment.tax_share``), and never more units of a line than were
ordered and not yet refunded (by a refund that has not failed) or cancelled unpaid. The
order's shipping and its tax are refunded once (``price_shipping``). The operator's refund by
lines (``POST /v1/admin/orders/{id}/refunds``) and the refund of a received return
(``POST /v1/admin/returns/{id}/receive``) both price their lines here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fulfillment.line_cancellation import cancelled_units
from fulfillment.models import Order, Refund
from fulfillment.tax_share import tax_share


class RefundLineRefused(Exception):
    """A line cannot be refunded; ``code`` says why and ``details`` which line."""

    code = "refund_line_refused"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class LineNotInOrder(RefundLineRefused):
    """The line names a product the order does not hold (the API answers 422)."""

    code = "not_in_order"


class RefundExceedsQuantity(RefundLineRefused):
    """More units than remain refundable of a line (the API answers 409)."""

    code = "refund_exceeds_quantity"


class ShippingAlreadyRefunded(RefundLineRefused):
    """The order's shipping was refunded already, by a refund that has not failed (the
    API answers 409): it is refunded once."""

    code = "shipping_already_refunded"


class NoShippingCharged(RefundLineRefused):
    """The order paid no shipping (placed without a quote, or shipped free): there is none
    to refund (the API answers 422)."""

    code = "no_shipping_charged"


def refunded_units(refunds: Iterable[Refund]) -> dict[str, int]:
    """Units per product (as a string id) refunded or being refunded: failed refunds aside."""
    refunded: dict[str, int] = {}
    for refund in refunds:
        if refund.status != "failed":
            for line in refund.lines:
                refunded[line["product_id"]] = (
                    refunded.get(line["product_id"], 0) + line["quantity"]
                )
    return refunded


def shipping_refunded(refunds: Iterable[Refund]) -> bool:
    """An order's shipping is refunded once: true when a refund that has not failed took it."""
    return any(refund.status != "failed" and refund.shipping_amount for refund in refunds)


def price_shipping(order: Order, refunds: Iterable[Refund]) -> tuple[int, int]:
    """(shipping, its tax) in minor units, to refund the order's shipping: once per order."""
    if not order.shipping_amount:
        raise NoShippingCharged("this order paid no shipping", shipping_amount=0)
    if shipping_refunded(refunds):
        raise ShippingAlreadyRefunded("this order's shipping has been refunded already",
                                      shipping_amount=order.shipping_amount)  # fmt: skip
    return order.shipping_amount, order.shipping_tax_amount


def price_refund_lines(
    order: Order, refunds: Iterable[Refund], units: Iterable[tuple[str, int]]
) -> tuple[int, list[dict]]:
    """(amount in minor units, refund lines) for ``units`` ((product id, quantity), in the
    order the lines are wanted): each at the price it was ordered, never more units than
    were ordered and not yet refunded by ``refunds``."""
    ordered = {str(line.product_id): line for line in order.lines}
    refunded = refunded_units(refunds)
    # units cancelled before the money was taken were never paid for (those cancelled
    # after it were refunded by lines, so ``refunds`` counts them)
    for product, quantity in cancelled_units(order.cancelled_lines or [], refunded=False).items():
        refunded[product] = refunded.get(product, 0) + quantity
    lines, amount = [], 0
    for product, quantity in units:
        bought = ordered.get(product)
        if bought is None:
            raise LineNotInOrder("a refunded line must be one of the order's lines",
                                 product_id=product)  # fmt: skip
        left = bought.quantity - refunded.get(product, 0)
        if quantity > left:
            raise RefundExceedsQuantity(f"only {left} of this line may still be refunded",
                                        product_id=product, refundable_quantity=left)  # fmt: skip
        tax = tax_share(bought.tax_amount or 0, bought.quantity, refunded.get(product, 0), quantity)
        refunded[product] = refunded.get(product, 0) + quantity  # a product named twice
        line_amount = bought.unit_amount * quantity + tax
        lines.append({"product_id": product, "quantity": quantity, "amount": line_amount,
                      **({"tax": tax} if tax else {})})  # fmt: skip
        amount += line_amount
    return amount, lines
