"""Cancelling some of an order's units before they ship, in one rule: which units may
go, what they cost, and what the order still holds.

A unit is cancelled at the price it was ordered and its share of the line's tax, and never more units of a line than
were ordered and not yet cancelled. Every reader of "what the order still holds" (the
reservation, the parcel's weight, returns, refunds by lines) reads ``remaining``; where
the units' stock goes back is ``fulfillment.stock.shrink``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fulfillment.tax_share import by_product, tax_share


class CancelLineRefused(Exception):
    """A line cannot be cancelled: ``code`` says why (``not_in_order`` is a 422,
    ``cancel_exceeds_order`` a 409), ``details`` which line."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.details = code, details


def cancelled_units(
    cancelled: Iterable[Mapping[str, Any]], *, refunded: bool | None = None
) -> dict[str, int]:
    """Units per product (a string id) cancelled; ``refunded`` narrows to those whose
    money was (True) or was never (False) taken."""
    units: dict[str, int] = {}
    for entry in cancelled:
        if refunded is None or bool(entry.get("refunded")) == refunded:
            units[str(entry["product_id"])] = units.get(str(entry["product_id"]), 0) + int(
                entry["quantity"]
            )
    return units


def cancelled_unpaid(cancelled: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """(amount less tax, tax) per product (a string id) of the units cancelled before the
    money was taken: what Stripe Tax gives back of the order's sale once it is recorded
    (the calculation it records is for the whole order)."""
    return by_product(entry for entry in cancelled if not entry.get("refunded"))


def remaining(
    lines: Iterable[tuple[uuid.UUID, int]], cancelled: Iterable[Mapping[str, Any]]
) -> list[tuple[uuid.UUID, int]]:
    """The order's (product, quantity) lines less what was cancelled; a line cancelled
    whole is gone."""
    gone = cancelled_units(cancelled)
    kept = [(product, quantity - gone.get(str(product), 0)) for product, quantity in lines]
    return [(product, quantity) for product, quantity in kept if quantity > 0]


def price_cancel(
    lines: Iterable[Any], cancelled: Iterable[Mapping[str, Any]], wanted: Iterable[tuple[str, int]]
) -> tuple[int, list[dict[str, Any]]]:
    """(amount in minor units, the lines ``[{"product_id", "quantity", "amount", "tax"}]``,
    each amount its units' price and tax share, ``fulfillment.tax_share``, ``tax`` only on a
    taxed order) for
    cancelling ``wanted`` ((product id, quantity)) of an order with ``lines`` (stored
    order lines) of which ``cancelled`` are gone already."""
    ordered = {str(line.product_id): line for line in lines}
    gone = cancelled_units(cancelled)
    out, amount, asked = [], 0, {}
    for product, quantity in wanted:
        asked[product] = asked.get(product, 0) + quantity
    for product, quantity in asked.items():
        line = ordered.get(product)
        if line is None:
            raise CancelLineRefused("not_in_order", "a cancelled line must be one of the order's lines",
                                    product_id=product)  # fmt: skip
        left = line.quantity - gone.get(product, 0)
        if quantity > left:
            raise CancelLineRefused("cancel_exceeds_order", f"only {left} of this line may still be cancelled",
                                    product_id=product, cancellable_quantity=left)  # fmt: skip
        tax = tax_share(line.tax_amount or 0, line.quantity, gone.get(product, 0), quantity)
        price = line.unit_amount * quantity + tax
        out.append({"product_id": product, "quantity": quantity, "amount": price,
                    **({"tax": tax} if tax else {})})  # fmt: skip
        amount += price
    return amount, out
