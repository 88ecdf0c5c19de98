"""``fulfillment verify``: the order's money adds up, and Stripe Tax holds what the orders
say it does (``pipelines.payments.tax``).

- every order's total is its subtotal, shipping and tax;
- an order whose money was captured on a tax calculation has its sale recorded: the
  transaction kept on the order exists at Stripe Tax, for the order's tax;
- the tax reversed (``tax_reversed_amount``) is the tax of the refunds that succeeded and
  of the units cancelled before the capture, and each refund's reversal exists at Stripe
  Tax for that refund's tax.

The database is read in ``check_all``'s snapshot, Stripe Tax after it: a writer keeps a
transaction or a reversal in the commit that follows its call, so Stripe holds at least
what the snapshot says. Stripe Tax is read by id (it lists no transactions), once per
taxed order and taxed refund: orders without a quote cost nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fulfillment.line_cancellation import cancelled_unpaid
from fulfillment.models import Refund
from integrations.errors import PermanentProviderError
from integrations.tax_port import TaxTransaction

#: Reads a tax transaction (a sale or a reversal) by its id.
ReadTransaction = Callable[[str], TaxTransaction]

#: The refunds that carry tax or reversed some.
_TAXED_REFUNDS = select(Refund.id, Refund.order_id, Refund.status, Refund.tax_amount,
                        Refund.tax_reversal_id).where(
    or_(Refund.tax_amount > 0, Refund.tax_reversal_id.is_not(None)))  # fmt: skip


def check_tax(orders: Iterable[Any], session: Session, report: Any, *,
              read: ReadTransaction) -> None:  # fmt: skip
    """The rules above, each violation in ``report``."""
    orders = list(orders)
    refunds: dict[Any, list[Any]] = {}
    for row in session.execute(_TAXED_REFUNDS):
        refunds.setdefault(row.order_id, []).append(row)
    for order in orders:
        parts = order.subtotal_amount + order.shipping_amount + order.tax_amount
        if order.total_amount != parts:
            report.violations.append(f"order {order.id}: total {order.total_amount} is not its "
                                     f"subtotal, shipping and tax ({parts})")  # fmt: skip
        if order.amount_captured and order.tax_calculation_id and not order.tax_transaction_id:
            report.violations.append(f"order {order.id} captured {order.amount_captured} on tax "
                                     f"calculation {order.tax_calculation_id}, but no tax "
                                     "transaction was recorded")  # fmt: skip
        if order.tax_transaction_id:
            _check_reversed(order, refunds.get(order.id, []), report)
    for order in orders:  # Stripe last: after every read of the snapshot
        if order.tax_transaction_id:
            _check_sale(order, read, report)
        for refund in refunds.get(order.id, []):
            if refund.tax_reversal_id:
                _check_reversal(order.id, refund, read, report)


def _check_reversed(order: Any, refunds: list[Any], report: Any) -> None:
    cancelled = sum(tax for _, tax in cancelled_unpaid(order.cancelled_lines or []).values())
    refunded = sum(r.tax_amount for r in refunds if r.status == "succeeded")
    if order.tax_reversed_amount != cancelled + refunded:
        report.violations.append(
            f"order {order.id}: tax reversed {order.tax_reversed_amount}, but its refunds that "
            f"succeeded carry {refunded} and its units cancelled before the capture {cancelled}"
        )
    for refund in refunds:
        if refund.status == "succeeded" and refund.tax_amount and not refund.tax_reversal_id:
            report.violations.append(f"order {order.id}: refund {refund.id} gave back tax "
                                     f"{refund.tax_amount} that Stripe Tax never reversed")  # fmt: skip


def _check_sale(order: Any, read: ReadTransaction, report: Any) -> None:
    sale = _read(read, order.tax_transaction_id, order.id, report)
    if sale is not None and (sale.type, sale.tax) != ("transaction", order.tax_amount):
        report.violations.append(f"order {order.id}: tax transaction {sale.id} is a {sale.type} "
                                 f"of tax {sale.tax}, the order's tax is {order.tax_amount}")  # fmt: skip


def _check_reversal(order_id: Any, refund: Any, read: ReadTransaction, report: Any) -> None:
    reversal = _read(read, refund.tax_reversal_id, order_id, report)
    if reversal is not None and (reversal.type, -reversal.tax) != ("reversal", refund.tax_amount):
        report.violations.append(f"order {order_id}: refund {refund.id}'s tax reversal "
                                 f"{reversal.id} gives back {-reversal.tax}, the refund's tax "
                                 f"is {refund.tax_amount}")  # fmt: skip


def _read(read: ReadTransaction, transaction_id: str, order_id: Any, report: Any):
    try:
        return read(transaction_id)
    except PermanentProviderError as exc:  # a transient one stops verify: nothing is known
        report.violations.append(f"order {order_id}: Stripe Tax does not show tax transaction "
                                 f"{transaction_id}: {exc}")  # fmt: skip
        return None
