"""The compensation's money step (``refund_payment``): give back what a cancelled or
failed order took, once, and settle the order - ``cancelled`` when nothing was taken,
``refunded`` otherwise.

Writers it meets on the order's row, each serialized by the row lock
(``SELECT … FOR UPDATE``) and re-checked under it:

- the charge step (``pipelines.payments.payment.settle``) landing after a cancel writes the
  PaymentIntent's id on the order; this step reads it under its lock before concluding
  anything, and runs again with it;
- a concurrent run of itself: the refund row is claimed under the lock
  (``pipelines.payments.refunds.claim_refund``) and settled once (its Stripe key and a guarded
  ``UPDATE … WHERE status = 'pending'``);
- the capture (``pipelines.payments.capture``): the compensation clears ``capture_due``, and the
  capture re-checks ``refund_due`` under its lock; Stripe itself orders a capture and a
  void of one PaymentIntent, and this step reads which won. Money captured has its sale
  recorded at Stripe Tax by whichever of them comes first, under one reference (so one
  transaction), and kept under the lock by the first commit (``pipelines.payments.tax``);
  the refund of everything refundable then carries all the tax not yet given back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fulfillment.checkpoints import reach
from fulfillment.models import Refund
from fulfillment.states import OrderStatus as S
from fulfillment.states import PaymentStatus as P
from fulfillment.states import can_transition
from integrations.ports import NotificationKind, Payment
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    lock_order,
    move,
    read_order,
    reading,
    record,
)
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.outcome import NotYet
from pipelines.payments.authorization import keep_payment
from pipelines.payments.counts import count_payment
from pipelines.payments.payment import FAILED_PAYMENT, current_payment
from pipelines.payments.refunds import REFUND_STATUS, claim_refund, refundable, settle_refund
from pipelines.payments.tax import keep_sale, record_sale


class ChargeOutcomeUnknown(NotYet):
    """A cancelled order's charge may still land at Stripe: its refund step asks again
    once Stripe's search would show it, rather than conclude that nothing was taken. A
    charge that lands meanwhile queues the step itself (``pipelines.payments.payment.settle``)."""


#: Stripe's search is not read-after-write: a new PaymentIntent becomes searchable "in
#: under 1 minute". A charge started before the cancel lands within its call (and its
#: retries). Until this long after the cancel, a search that finds nothing proves nothing.
CHARGE_SETTLES_WITHIN = timedelta(minutes=2)


def refund_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """The compensation's money step: void an authorization that was never captured
    (or a PaymentIntent that never succeeded), refund what was captured and not yet
    refunded (a refund row of its own, ``pipelines.payments.refunds``), then settle the order:
    ``cancelled`` when no money was ever taken, else ``refunded``.

    It concludes "nothing was taken" only from the order's own PaymentIntent, or once
    Stripe's search has had time to show a charge that landed after the cancel
    (``CHARGE_SETTLES_WITHIN``); a charge that lands while it runs is seen under the
    order's lock (the charge step writes its id there) and settled in the same run.
    A refund Stripe refuses sends the order to an operator (``needs_attention``, the
    refund still due); their resume runs this step again with a new refund."""
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or not order.refund_due:
            return SKIPPED
        if order.status == S.NEEDS_ATTENTION and _refusal_waiting(session, order.id):
            return SKIPPED  # an operator resumes it, and the refund is tried again
        intent_id = order.payment_intent_id
    payment = current_payment(deps, order_id, intent_id)
    if payment is not None and not payment.succeeded and payment.status not in FAILED_PAYMENT:
        payment = deps.payments.cancel_payment(payment.id, order_id=str(order_id))
    refund_id = None
    if payment is not None and payment.succeeded:  # it may have cleared while cancelling
        # money was captured: its sale is recorded (the same one as a capture or charge
        # in flight would record) before the refund that reverses its tax is claimed
        sale = record_sale(deps, order)
        with begin(deps) as session:
            order = lock_order(session, order_id)
            if order is None:
                return SKIPPED
            keep_sale(session, order, sale, step="refund_payment", attempt=attempt)
            if not order.refund_due:
                return SKIPPED
            if order.payment_intent_id is None:  # found by search: the refund needs it
                order.payment_intent_id = payment.id
            keep_payment(order, payment)
            refund_id = claim_refund(session, order)
        if refund_id is not None:
            settle_refund(deps, str(refund_id), attempt=attempt, mail=False)
    reach("refund_payment.before_settle")
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or not order.refund_due:
            return SKIPPED
        if payment is None and order.payment_intent_id is not None:
            again = True  # the charge landed meanwhile: run again with its intent
        else:
            again = False
            waited = deps.now() - order.status_changed_at
            if payment is None and waited < CHARGE_SETTLES_WITHIN:
                raise ChargeOutcomeUnknown(
                    f"order {order_id}: no PaymentIntent found yet",
                    retry_in=(CHARGE_SETTLES_WITHIN - waited).total_seconds(),
                )
            outcome = _refund_outcome(session, refund_id)
            if outcome is not None and outcome.status == "failed":
                return FAILED  # with the order in front of an operator (pipelines.payments.refunds)
            if outcome is not None and outcome.status == "pending":
                return SKIPPED  # another run is settling it, and finishes the order
            if refund_id is not None and refundable(order) > 0:
                again = True  # an operator's refund under way was refused meanwhile
            else:
                _settle_compensation(session, order, payment, refund_id=refund_id,
                                     attempt=attempt)  # fmt: skip
    if again:
        return refund_payment(deps, order_id, attempt=attempt)
    return SUCCESS


#: The latest compensation refund of an order, refused: an operator looks at it.
_LATEST_COMPENSATION = (
    select(Refund.status).where(Refund.order_id == bindparam("b_order"),
                                Refund.source == "compensation")
    .order_by(Refund.created_at.desc()).limit(1)
)  # fmt: skip


def _refusal_waiting(session: Session, order_id) -> bool:
    return session.scalar(_LATEST_COMPENSATION, {"b_order": order_id}) == "failed"


def _refund_outcome(session: Session, refund_id) -> Any:
    if refund_id is None:
        return None
    return session.execute(REFUND_STATUS, {"b_refund": refund_id}).first()


def _settle_compensation(session: Session, order: LockedOrder, payment: Payment | None, *,
                         refund_id, attempt: int) -> None:  # fmt: skip
    """The money is back (refunded or voided) or was never taken: the order settles."""
    if payment is not None:
        keep_payment(order, payment)
    order.refund_due = False
    if order.capture_due:  # nothing is captured once the compensation has run
        order.capture_due = False
    refunded = payment is not None and payment.succeeded
    voided = payment is not None and payment.status == "canceled" and order.amount_authorized
    order.refund_id = str(refund_id) if refund_id else None
    outcome = "refunded" if refunded else "voided" if voided else "nothing_to_refund"
    if voided:
        order.payment_status = P.VOIDED.value
        count_payment(session, "void", "succeeded")
    record(session, order, step="refund_payment", attempt=attempt, outcome=outcome,
           details={"refund": order.refund_id} if refund_id else {})  # fmt: skip
    if order.status not in (S.CANCELLED, S.REJECTED, S.REFUNDED, S.DELIVERED):
        # goods that left (even if an operator looks at the order now) were never
        # "not shippable": such an order is refunded, not cancelled
        never_shipped = order.shipped_at is None
        target = (
            S.CANCELLED
            if not refunded and never_shipped and can_transition(S(order.status), S.CANCELLED)
            else S.REFUNDED
        )
        if order.status == S.NEEDS_ATTENTION:
            order.attention_from = None
        move(session, order, target, step="refund_payment", attempt=attempt)
        if target == S.CANCELLED:
            tell_customer(session, order, NotificationKind.CANCELLED, reason="not_shippable")
    if refunded:
        tell_customer(session, order, NotificationKind.REFUNDED,
                      amount=order.amount_captured)  # fmt: skip
