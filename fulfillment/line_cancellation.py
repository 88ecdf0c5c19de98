"""Cancelling some of an order's units before they ship, in one rule: which units may
go, what they cost, what the order still holds, and where their stock is given back.

A unit is cancelled at the price it was ordered, and never more units of a line than
were ordered and not yet cancelled. Every reader of "what the order still holds" (the
reservation, the parcel's weight, returns, refunds by lines) reads ``remaining``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fulfillment.stock import Held


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
    """(amount in minor units, the lines ``[{"product_id", "quantity", "amount"}]``) for
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
        out.append(
            {"product_id": product, "quantity": quantity, "amount": line.unit_amount * quantity}
        )
        amount += line.unit_amount * quantity
    return amount, out


def shrink(
    held: Iterable[Held], cancelled: Iterable[Mapping[str, Any]]
) -> tuple[list[Held], list[Held]]:
    """(what the order still holds, what to give back) once ``cancelled`` lines go:
    each product's units are given back first where the order holds the fewest of it,
    so a package that shrinks to nothing is dropped before a larger one shrinks."""
    take = {str(line["product_id"]): int(line["quantity"]) for line in cancelled}
    kept: list[Held] = []
    back: list[Held] = []
    by_product: dict[uuid.UUID, list[Held]] = {}
    for h in held:
        by_product.setdefault(h.product_id, []).append(h)
    for product, entries in by_product.items():
        left = take.get(str(product), 0)
        for h in sorted(entries, key=lambda h: (h.quantity, str(h.location_id))):
            give = min(left, h.quantity)
            left -= give
            if give:
                back.append(Held(product, h.location_id, give))
            if h.quantity - give:
                kept.append(Held(product, h.location_id, h.quantity - give))
    return kept, back
