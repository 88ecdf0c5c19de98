"""A line's tax, shared among its units in one rule: the units given back (cancelled or
refunded) take, together, the tax of that many units, rounded half up, so that every
unit of a line given back, in any number of steps, gives back exactly the line's tax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def tax_of(line_tax: int, ordered: int, units: int) -> int:
    """The tax of the first ``units`` of ``ordered``, rounded half up (minor units)."""
    if ordered <= 0 or units <= 0:
        return 0
    return (2 * line_tax * min(units, ordered) + ordered) // (2 * ordered)


def tax_share(line_tax: int, ordered: int, before: int, units: int) -> int:
    """The tax ``units`` more take when ``before`` of the line's ``ordered`` are gone."""
    return tax_of(line_tax, ordered, before + units) - tax_of(line_tax, ordered, before)


def by_product(lines: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """(amount less tax, tax) per product (a string id) of line entries ``{"product_id",
    "amount", "tax"}`` (a refund's or a cancel's): what Stripe Tax is given back."""
    parts: dict[str, tuple[int, int]] = {}
    for line in lines:
        tax = int(line.get("tax") or 0)
        amount, taxed = parts.get(str(line["product_id"]), (0, 0))
        parts[str(line["product_id"])] = (amount + int(line["amount"]) - tax, taxed + tax)
    return parts
