"""An order priced as a checkout quote prices it, written straight to its rows: the tests
of what shows an order's amounts (the e-mails, the desk, the merchant events) need the
amounts a quote leaves on an order, not the quote
(``tests/integration/api/checkout/test_order_on_quote.py`` places orders on real ones)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from fulfillment.models import Order, OrderLine


@dataclass(frozen=True)
class Amounts:
    """What the order keeps, in minor units (``total`` = the other three)."""

    subtotal: int
    shipping: int
    tax: int
    total: int


def price_as_quoted(
    engine: Engine,
    order_id: uuid.UUID | str,
    *,
    line_taxes: Sequence[int],
    shipping: int = 690,
    shipping_tax: int = 61,
    carrier: str = "USPS",
    service: str = "Priority",
) -> Amounts:
    """Give a placed, unpaid order the shipping and tax of a quote's option: each line
    its tax (``line_taxes``, in the lines' order), the shipping and its tax, the carrier
    and service paid for, and the total their sum (as the database checks)."""
    oid = uuid.UUID(str(order_id))
    with Session(engine) as session, session.begin():
        lines = session.scalars(
            select(OrderLine).where(OrderLine.order_id == oid).order_by(OrderLine.position)
        ).all()
        assert len(lines) == len(line_taxes), "one tax per line"
        for line, tax in zip(lines, line_taxes, strict=True):
            line.tax_amount = tax
        subtotal = sum(line.unit_amount * line.quantity for line in lines)
        tax = sum(line_taxes) + shipping_tax
        amounts = Amounts(subtotal, shipping, tax, subtotal + shipping + tax)
        session.execute(update(Order).where(Order.id == oid).values(
            subtotal_amount=subtotal, shipping_amount=shipping, tax_amount=tax,
            shipping_tax_amount=shipping_tax, total_amount=amounts.total,
            shipping_carrier=carrier, shipping_service=service))  # fmt: skip
    return amounts
