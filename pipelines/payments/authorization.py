"""What Stripe holds of an order's payment, written on the locked order
(``keep_payment``), and what happens when an authorization is lost while the order
goes on (``authorization_lost``): never silently, an operator decides.

The charge (``pipelines.payments.payment``), the capture (``pipelines.payments.capture``)
and the compensation's refund step all build on this module; it builds on none of them.
"""

from __future__ import annotations

from fulfillment.states import OrderStatus as S
from fulfillment.states import PaymentStatus as P
from fulfillment.states import can_transition
from integrations.ports import Payment
from pipelines.common import FAILED, SKIPPED, begin, lock_order, move, record
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.saga import HOLDING_PAYMENT

#: What the order shows of each PaymentIntent status.
PAYMENT_STATUS = {
    "requires_action": P.REQUIRES_ACTION, "processing": P.PROCESSING,
    "requires_confirmation": P.PROCESSING, "requires_capture": P.AUTHORIZED,
    "succeeded": P.CAPTURED, "requires_payment_method": P.FAILED, "canceled": P.VOIDED,
}  # fmt: skip


def keep_payment(order: LockedOrder, payment: Payment) -> None:
    """Write what Stripe holds of the payment on the locked order: its status, the
    amounts authorized and captured, the capture deadline, and - only while the card
    needs its owner - what Stripe.js needs to let them authenticate."""
    status = PAYMENT_STATUS.get(payment.status, P.PROCESSING)
    if status == P.CAPTURED and order.amount_refunded:
        status = (
            P.PARTIALLY_REFUNDED if order.amount_refunded < order.amount_captured else P.REFUNDED
        )
    set_changed(order, "payment_status", status.value)
    set_changed(order, "capture_method", payment.capture_method)
    if payment.authorized:
        set_changed(order, "amount_authorized", payment.amount_capturable)
        set_changed(order, "capture_before", payment.capture_before)
    if payment.succeeded:
        set_changed(
            order, "amount_authorized", max(order.amount_authorized, payment.amount_received)
        )
        set_changed(order, "amount_captured", payment.amount_received)
    set_changed(order, "payment_client_secret",
                payment.client_secret if payment.needs_customer else None)  # fmt: skip
    set_changed(order, "payment_next_action",
                dict(payment.next_action) if payment.needs_customer and payment.next_action
                else None)  # fmt: skip


def set_changed(order: LockedOrder, name: str, value) -> None:
    """Set a column only when it changes (the UPDATE then names only what changed)."""
    if getattr(order, name) != value:
        setattr(order, name, value)


def lapsed(payment: Payment) -> str:
    """Why an authorization can no longer be captured, for the operator."""
    if payment.status == "canceled":
        why = "expired" if payment.cancellation_reason == "automatic" else "was cancelled"
        return f"the authorization {why} before it was captured; the goods have shipped"
    return f"the authorization cannot be captured (PaymentIntent is {payment.status})"


def authorization_lost(deps: Deps, order_id: str, payment: Payment, *, step: str,
                       attempt: int) -> str:  # fmt: skip
    """Stripe cancelled the authorization of an order still going on (it lapsed, or
    someone cancelled it in Stripe's dashboard): never silently, an operator decides."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in HOLDING_PAYMENT or order.amount_captured:
            return SKIPPED
        keep_payment(order, payment)
        needs_attention(session, order, reason=lapsed(payment), step=step, attempt=attempt)
    return FAILED


def needs_attention(session, order: LockedOrder, *, reason: str, step: str, attempt: int) -> None:
    """The order to an operator with ``reason`` (only recorded when it cannot move there)."""
    if order.status == S.NEEDS_ATTENTION or not can_transition(S(order.status), S.NEEDS_ATTENTION):
        record(session, order, step=step, attempt=attempt, outcome="failed", error=reason)
        return
    order.attention_from = order.status
    move(session, order, S.NEEDS_ATTENTION, step=step, attempt=attempt, outcome="failed",
         error=reason, details={"payment_status": order.payment_status})  # fmt: skip
