"""Stripe Tax as the order's money needs it (``integrations.stripe_tax``): tax calculated
before the order, recorded at capture, reversed with refunds, each result reduced to
what the product keeps (never an SDK object)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TaxLine:
    """One line of a tax calculation: ``reference`` (our product id), the line's amount
    in minor units (tax exclusive), its quantity and tax code."""

    reference: str
    amount: int
    quantity: int
    tax_code: str


@dataclass(frozen=True, slots=True)
class TaxCalculation:
    """Stripe Tax's ``tax.calculation``, reduced: the tax on each line (by reference) and
    on shipping, all exclusive, in minor units; it can be recorded as a transaction until
    ``expires_at``."""

    id: str
    tax: int
    shipping_tax: int
    line_taxes: Mapping[str, int]
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaxTransaction:
    """Stripe Tax's ``tax.transaction`` (a recorded sale, or a reversal of part of one:
    amounts negative then), reduced."""

    id: str
    reference: str
    type: str
    tax: int
    #: Our product id -> Stripe's line item id, for a later reversal by lines.
    line_items: Mapping[str, str]


class TaxCalculator(Protocol):
    """Stripe Tax: tax calculated before the order, recorded at capture, reversed with
    refunds. Each effect is keyed by ``reference`` (a retry records nothing twice)."""

    def calculate(
        self,
        *,
        currency: str,
        lines: list[TaxLine],
        shipping: int,
        address: Mapping[str, Any],
    ) -> TaxCalculation:
        """Tax for ``lines`` and ``shipping`` (minor units) shipped to ``address`` (our
        address shape); no effect."""
        ...

    def record(self, *, calculation_id: str, reference: str) -> TaxTransaction:
        """The calculation recorded as a sale under ``reference``; the same reference
        again, while Stripe keeps its idempotency key (24 hours), answers the transaction
        recorded first, and later is refused (``integrations.stripe_tax.REFERENCE_USED``):
        the caller keeps the transaction's id."""
        ...

    def reverse(
        self,
        *,
        transaction_id: str,
        reference: str,
        lines: Mapping[str, tuple[int, int]],
        shipping: tuple[int, int] | None = None,
    ) -> TaxTransaction:
        """A partial reversal of a recorded sale under ``reference``: per product id,
        (amount, tax) given back (positive minor units), and shipping's; the same
        reference again answers the reversal made first."""
        ...
