"""Stripe Tax at the money steps: the order's sale recorded when its money is captured,
and the tax of what is given back reversed, each under a reference Stripe keys its
effect by, so that a retry, a duplicate or a second writer records nothing twice.

- ``record_sale``: whichever step first sees the money captured - ``capture_payment``,
  an automatic charge's ``settle``, the compensation's refund step for a charge that
  landed after a cancel - records the order's calculation under ``order_<id>``, outside
  any row lock, and, when units were cancelled before the money was taken (the
  calculation is for the whole order), reverses their tax at once under
  ``order_<id>_cancelled``. Every writer sends the same requests under the same keys, so
  two at once get one transaction. ``keep_sale`` keeps its id under the order's lock in
  the commit that keeps the capture, whichever way that step ends: Stripe cannot find a
  transaction by its reference, so an id not kept now is lost.
- ``reverse_refund``: a refund's tax (by its lines: amount and tax per product; and its
  shipping) reversed under ``refund_<id>`` once Stripe has given the money back, and
  ``keep_reversal`` counts it on the order (``tax_reversed_amount``) in the commit that
  keeps the refund's success (``pipelines.payments.refunds.settle_refund``).

Failures never undo money. A transient one (timeout, 429, 5xx) is raised: the message
is retried, and the capture, the charge and the refund are found made at Stripe (their
keys) before the tax is tried again. A permanent one (an expired calculation, a
reference whose 24-hour key Stripe no longer keeps) keeps the capture or the refund,
leaves ``tax_transaction_id`` or the refund's ``tax_reversal_id`` empty (or the cancelled
units' tax uncounted), and writes the error on the timeline (``tax_record_failed``,
``tax_reversal_failed``); ``fulfillment verify`` reports it until an operator settles it
with Stripe Tax. A refund's message run again (``process_refund``) tries its reversal
again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from fulfillment.line_cancellation import cancelled_units, cancelled_unpaid
from fulfillment.messages import PROCESS_REFUND
from fulfillment.models import Order, OrderLine, Refund
from fulfillment.refunds import price_refund_lines, refunded_units, shipping_refunded
from fulfillment.tax_share import by_product
from integrations.errors import PermanentProviderError
from pipelines import sql
from pipelines.common import SKIPPED, SUCCESS, begin, lock_order, reading, record, send_later
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.payments.counts import count_payment

#: Why a step whose ``Deps`` has no tax calculator recorded or reversed nothing.
NO_CALCULATOR = "no Stripe Tax calculator is configured in this process"


def sale_reference(order_id: Any) -> str:
    """The reference of the order's sale at Stripe Tax."""
    return f"order_{order_id}"


def cancel_reference(order_id: Any) -> str:
    """The reference of the reversal of the units cancelled before the capture."""
    return f"order_{order_id}_cancelled"


def refund_reference(refund_id: Any) -> str:
    """The reference of the reversal of one refund's tax."""
    return f"refund_{refund_id}"


@dataclass(frozen=True, slots=True)
class Sale:
    """What ``record_sale`` did at Stripe Tax, for ``keep_sale`` to keep."""

    transaction_id: str | None = None
    #: The tax of the units cancelled before the capture, reversed with the sale.
    cancelled_tax: int = 0
    cancel_reversal_id: str | None = None
    error: str | None = None


#: The units an order cancelled, read only when some were (``amount_cancelled``).
_CANCELLED = select(Order.cancelled_lines).where(Order.id == bindparam("b_order"))


def record_sale(deps: Deps, read: Any) -> Sale | None:
    """The sale of an order whose money was just captured, recorded at Stripe Tax; None
    when there is nothing to record (no calculation: an order without a quote; or one
    kept already). ``read`` is the order as the step read it before its call
    (``pipelines.common.read_order``). Raises a transient failure, for a retry."""
    if read is None or not read.tax_calculation_id or read.tax_transaction_id:
        return None
    if deps.tax is None:  # a process built without Stripe Tax: said, never skipped silently
        return Sale(error=NO_CALCULATOR)
    try:
        sale = deps.tax.record(calculation_id=read.tax_calculation_id,
                               reference=sale_reference(read.id))  # fmt: skip
    except PermanentProviderError as exc:
        return Sale(error=f"Stripe Tax did not record the sale: {exc}")
    cancelled: dict[str, tuple[int, int]] = {}
    if read.amount_cancelled:  # stable now: no cancel while a capture or charge is due
        with reading(deps) as session:
            cancelled = cancelled_unpaid(sql.one(session, _CANCELLED, {"b_order": read.id})[0])
    tax = sum(part_tax for _, part_tax in cancelled.values())
    if not tax:
        return Sale(sale.id)
    try:
        reversal = deps.tax.reverse(transaction_id=sale.id, reference=cancel_reference(read.id),
                                    lines=cancelled)  # fmt: skip
    except PermanentProviderError as exc:
        return Sale(sale.id, error=f"Stripe Tax did not reverse the tax of the units "
                    f"cancelled before the capture ({tax}): {exc}")  # fmt: skip
    return Sale(sale.id, cancelled_tax=tax, cancel_reversal_id=reversal.id)


#: Refunds that succeeded while the order had no tax transaction kept: their tax is
#: reversed once one is (``settle_refund`` reverses a succeeded refund's tax alone).
_UNREVERSED = select(Refund.id).where(
    Refund.order_id == bindparam("b_order"), Refund.status == "succeeded",
    Refund.tax_amount > 0, Refund.tax_reversal_id.is_(None),
)  # fmt: skip


def keep_sale(session: Session, order: LockedOrder, sale: Sale | None, *, step: str,
              attempt: int) -> None:  # fmt: skip
    """Under the order's lock: the sale's transaction (and the cancelled units' reversal,
    counted in ``tax_reversed_amount``) kept, unless another writer kept it first (the
    same transaction: the same reference); a refusal written on the timeline."""
    if sale is None or order.tax_transaction_id is not None:
        return
    if sale.transaction_id is not None:
        order.tax_transaction_id = sale.transaction_id
        order.tax_reversed_amount = order.tax_reversed_amount + sale.cancelled_tax
        count_payment(session, "tax_record", "succeeded")
        details = {"tax_transaction": sale.transaction_id}
        if sale.cancel_reversal_id:
            count_payment(session, "tax_reversal", "succeeded")
            details |= {"cancelled_reversal": sale.cancel_reversal_id,
                        "cancelled_tax": sale.cancelled_tax}  # fmt: skip
        record(session, order, step=step, attempt=attempt, outcome="tax_recorded",
               details=details)  # fmt: skip
        if order.amount_refunded:
            for refund_id in session.scalars(_UNREVERSED, {"b_order": order.id}):
                send_later(session, PROCESS_REFUND, refund_id=refund_id)
    if sale.error is not None:  # the order goes on; verify reports it until it is settled
        operation = "tax_reversal" if sale.transaction_id else "tax_record"
        count_payment(session, operation, "failed")
        record(session, order, step=step, attempt=attempt, outcome=f"{operation}_failed",
               error=sale.error, details={"tax_transaction": sale.transaction_id})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reversal:
    """A refund's tax reversed at Stripe Tax (``id``), or why not (``error``)."""

    id: str | None = None
    error: str | None = None


def reversal_due(refund: Any) -> bool:
    """A refund row (with its order's ``tax_transaction_id``) whose tax is not reversed."""
    return bool(refund.tax_amount) and refund.tax_reversal_id is None


def reverse_refund(deps: Deps, refund_id: Any, refund: Any) -> Reversal | None:
    """The refund's tax reversed at Stripe Tax, by its lines and shipping; None when it
    carries no tax. ``refund`` is the refund row as read with its order's
    ``tax_transaction_id``. Raises a transient failure, for a retry."""
    if not reversal_due(refund):
        return None
    if refund.tax_transaction_id is None:
        return Reversal(error="the order's sale is not recorded at Stripe Tax: its tax "
                        "is reversed once it is")  # fmt: skip
    if deps.tax is None:
        return Reversal(error=NO_CALCULATOR)
    lines = by_product(refund.lines or ())
    shipping_tax = refund.tax_amount - sum(tax for _, tax in lines.values())
    shipping = (refund.shipping_amount, shipping_tax) if refund.shipping_amount else None
    try:
        made = deps.tax.reverse(transaction_id=refund.tax_transaction_id,
                                reference=refund_reference(refund_id), lines=lines,
                                shipping=shipping)  # fmt: skip
    except PermanentProviderError as exc:
        return Reversal(error=f"Stripe Tax did not reverse the refund's tax: {exc}")
    return Reversal(made.id)


#: The reversal kept on its refund, once.
_KEEP_REVERSAL = (
    update(Refund).where(Refund.id == bindparam("b_refund"), Refund.tax_reversal_id.is_(None))
    .values(tax_reversal_id=bindparam("b_reversal"), updated_at=bindparam("b_at"))
    .returning(Refund.tax_amount)
)  # fmt: skip


def keep_reversal(session: Session, order: LockedOrder, refund_id: Any,
                  reversal: Reversal | None, *, attempt: int) -> None:  # fmt: skip
    """Under the order's lock: the reversal kept on the refund and counted on the order,
    once (a second run finds it kept); a refusal written on the timeline."""
    if reversal is None:
        return
    details = {"refund": str(refund_id)}
    if reversal.id is None:
        count_payment(session, "tax_reversal", "failed")
        record(session, order, step="refund", attempt=attempt, outcome="tax_reversal_failed",
               error=reversal.error, details=details)  # fmt: skip
        return
    kept = sql.one(session, _KEEP_REVERSAL, {"b_refund": uuid.UUID(str(refund_id)),
                                             "b_reversal": reversal.id,
                                             "b_at": session.info["now"]()})  # fmt: skip
    if kept is not None:
        count_payment(session, "tax_reversal", "succeeded")
        order.tax_reversed_amount = order.tax_reversed_amount + kept.tax_amount
        record(session, order, step="refund", attempt=attempt, outcome="tax_reversed",
               details={**details, "tax_reversal": reversal.id, "tax": kept.tax_amount})  # fmt: skip


def reverse_made_refund(deps: Deps, refund_id: Any, refund: Any, *, attempt: int) -> str:
    """The tax of a refund that succeeded before its order's sale was kept, reversed now
    (the commit that kept the sale queued this)."""
    if refund.tax_transaction_id is None or not reversal_due(refund):
        return SKIPPED
    reversal = reverse_refund(deps, refund_id, refund)
    with begin(deps) as session:
        order = lock_order(session, refund.order_id)
        if order is None:
            return SKIPPED
        keep_reversal(session, order, refund_id, reversal, attempt=attempt)
    return SUCCESS


_LINES = select(OrderLine).where(OrderLine.order_id == bindparam("b_order"))
_REFUNDS = select(Refund).where(Refund.order_id == bindparam("b_order"))


def left_to_give_back(session: Session, order: LockedOrder) -> dict[str, Any]:
    """What of the order no refund has taken yet, as ``new_refund_row``'s ``lines``,
    ``shipping`` and ``tax``: for the compensation's refund of everything refundable, so
    that an order refunded in full has all its tax reversed. The units neither refunded
    (by a refund that has not failed) nor cancelled unpaid, each with its tax share, and
    the shipping with its tax unless a refund took it. Nothing for an order that has no
    tax and no shipping (one placed without a quote)."""
    if not (order.tax_amount or order.shipping_amount):
        return {}
    lines = session.scalars(_LINES, {"b_order": order.id}).all()
    refunds = session.scalars(_REFUNDS, {"b_order": order.id}).all()
    gone = refunded_units(refunds)
    for product, quantity in cancelled_units(order.cancelled_lines or [], refunded=False).items():
        gone[product] = gone.get(product, 0) + quantity
    left = [(str(line.product_id), line.quantity - gone.get(str(line.product_id), 0))
            for line in lines]  # fmt: skip
    priced_from = SimpleNamespace(lines=lines, cancelled_lines=order.cancelled_lines or [])
    _, parts = price_refund_lines(priced_from, refunds, [(p, q) for p, q in left if q > 0])
    shipping = 0 if shipping_refunded(refunds) else order.shipping_amount
    shipping_tax = order.shipping_tax_amount if shipping else 0
    return {"lines": parts, "shipping": shipping,
            "tax": sum(line.get("tax", 0) for line in parts) + shipping_tax}  # fmt: skip
