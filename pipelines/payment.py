"""Steps 2 and 3: take the payment and settle it; refunds and reservation expiry.

Stripe is called outside any row lock (a call may take seconds); its idempotency key
(``order_<id>_payment``) makes a repeated call return the same PaymentIntent, and the
order is then moved under a lock only if it is still where the step expects it.
A payment that succeeds for an order that has meanwhile been cancelled is refunded.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from fulfillment.messages import PROCESS_WEBHOOK, REFUND_PAYMENT
from fulfillment.models import WebhookEvent
from fulfillment.states import OrderStatus as S
from integrations.errors import PermanentProviderError
from integrations.ports import NotificationKind, Payment
from pipelines import compensation as plans
from pipelines import sql
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    compensate,
    lock_order,
    move,
    read_order,
    reading,
    record,
    send_later,
    tell_customer,
)  # fmt: skip
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.saga import AWAITING_PAYMENT
from pipelines.shipping import pack

#: PaymentIntent statuses that mean this attempt to pay has failed for good.
FAILED_PAYMENT = frozenset({"requires_payment_method", "canceled"})
#: Stripe keeps idempotency keys for 24 hours. A charge attempted this long after the
#: order was placed (a redrive the next day) first looks for an earlier PaymentIntent.
KEY_LIFETIME_MARGIN = timedelta(hours=12)


def request_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or order.status != S.RESERVED:
            return SKIPPED
        created_at = order.created_at
        charge = {
            "order_id": str(order.id),
            "amount": order.total_amount,
            "currency": order.currency,
            "payment_method": order.payment_method,
        }
    if deps.now() - created_at > KEY_LIFETIME_MARGIN:
        earlier = deps.payments.find_payment(str(order_id))
        if earlier is not None and earlier.status not in FAILED_PAYMENT:
            return settle(deps, order_id, earlier, step="request_payment", attempt=attempt)
    try:
        payment = deps.payments.charge(**charge)
    except PermanentProviderError as exc:
        return _payment_failed(
            deps, order_id, step="request_payment", attempt=attempt, error=str(exc), code=exc.code
        )
    return settle(deps, order_id, payment, step="request_payment", attempt=attempt)


def settle_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Ask Stripe where the order's payment stands (after a webhook, or when stalled)."""
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or order.status not in (*AWAITING_PAYMENT, S.CANCELLED):
            return SKIPPED  # settled already (a webhook after the charge answered): no call
        if order.status == S.CANCELLED and (order.refund_due or order.refund_id):
            return SKIPPED  # its refund is already under way
        intent_id = order.payment_intent_id
    payment = _current_payment(deps, order_id, intent_id)
    if payment is None:
        return SKIPPED
    return settle(deps, order_id, payment, step="settle_payment", attempt=attempt)


def _current_payment(deps: Deps, order_id: str, intent_id: str | None) -> Payment | None:
    """The order's PaymentIntent: by its id when the order knows it, else by search."""
    if intent_id:
        return deps.payments.retrieve_payment(intent_id)
    return deps.payments.find_payment(str(order_id))


def settle(deps: Deps, order_id: str, payment: Payment, *, step: str, attempt: int) -> str:
    if payment.status in FAILED_PAYMENT:
        return _payment_failed(
            deps,
            order_id,
            step=step,
            attempt=attempt,
            error=payment.failure_message or payment.status,
            code=payment.failure_code,
        )
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None:
            return SKIPPED
        if order.payment_intent_id is None:
            order.payment_intent_id = payment.id
        if order.status not in AWAITING_PAYMENT:
            if (
                payment.succeeded
                and order.status == S.CANCELLED
                and not (order.refund_due or order.refund_id)
            ):
                _refund_later(session, order, step=step, attempt=attempt)
            return SKIPPED
        settled, in_flight = payment.succeeded, order.status == S.RESERVED
        if in_flight:
            move(
                session,
                order,
                S.PAYMENT_PENDING,
                step=step,
                attempt=attempt,
                details={"payment_intent": payment.id},
            )
        if settled or in_flight:
            pick_up_payment_events(session, order, waiting=not settled)
        if not settled:
            return SUCCESS  # processing: the webhook or the sweeper settles it later
        move(session, order, S.PAID, step=step, attempt=attempt,
             details={"payment_intent": payment.id})  # fmt: skip
        pack(session, order, step=step, attempt=attempt)
        tell_customer(session, order, NotificationKind.ORDER_CONFIRMED)
    return SUCCESS


def _payment_failed(
    deps: Deps, order_id: str, *, step: str, attempt: int, error: str, code: str | None
) -> str:
    """Compensation ``release_and_cancel``: the stock back, cancelled, customer told."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in AWAITING_PAYMENT:
            return SKIPPED
        pick_up_payment_events(session, order, waiting=False)
        compensate(session, order, plans.payment_failed(error=error, code=code), step=step,
                   attempt=attempt)  # fmt: skip
    return FAILED


#: The order's payment events the API stored while its charge was in flight.
_STORED_EVENTS = (WebhookEvent.provider == "stripe", WebhookEvent.processed_at.is_(None),
                  WebhookEvent.order_id == bindparam("of_order"))  # fmt: skip


_SETTLE_STORED = update(WebhookEvent).where(*_STORED_EVENTS).values(processed_at=bindparam("b_at"))
_WAITING_EVENTS = select(WebhookEvent.id).where(*_STORED_EVENTS)


def pick_up_payment_events(session: Session, order: LockedOrder, *, waiting: bool) -> None:
    """Payment events that arrived while the charge was in flight (``api.webhooks``
    keeps them for this commit): settled by the charge's own answer, they are marked
    processed; for an order left waiting on them, they are processed now."""
    params = {"of_order": order.id}
    if not waiting:
        sql.run(session, _SETTLE_STORED, {**params, "b_at": session.info["now"]()})
        return
    for event_id in session.connection().scalars(_WAITING_EVENTS, params):
        send_later(session, PROCESS_WEBHOOK, event_id=event_id)


def _refund_later(session: Session, order: LockedOrder, *, step: str, attempt: int) -> None:
    order.refund_due = True
    record(
        session,
        order,
        step=step,
        attempt=attempt,
        outcome="refund_due",
        details={"payment_intent": order.payment_intent_id},
    )
    send_later(session, REFUND_PAYMENT, order_id=order.id)


def refund_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Give back whatever the order paid (refund key ``order_<id>_refund``), or cancel a
    PaymentIntent that never succeeded; orders still live become ``refunded``."""
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or not order.refund_due:
            return SKIPPED
        intent_id = order.payment_intent_id
    payment = _current_payment(deps, order_id, intent_id)
    if payment is not None and not payment.succeeded and payment.status not in FAILED_PAYMENT:
        payment = deps.payments.cancel_payment(payment.id, order_id=str(order_id))
    refund_id = None
    if payment is not None and payment.succeeded:  # it may have cleared while cancelling
        refund_id = deps.payments.refund(order_id=str(order_id), payment_id=payment.id).id
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or not order.refund_due:
            return SKIPPED
        order.refund_due = False
        order.refund_id = refund_id
        record(
            session,
            order,
            step="refund_payment",
            attempt=attempt,
            outcome="refunded" if refund_id else "nothing_to_refund",
            details={"refund": refund_id} if refund_id else {},
        )
        if order.status not in (S.CANCELLED, S.REJECTED, S.REFUNDED, S.DELIVERED):
            move(session, order, S.REFUNDED, step="refund_payment", attempt=attempt)
        if refund_id:
            tell_customer(session, order, NotificationKind.REFUNDED)
    return SUCCESS


def expire_reservation(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """An order left in payment_pending past its deadline: settle it if the money came
    in after all, otherwise cancel the PaymentIntent, release the stock and cancel."""
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or order.status != S.PAYMENT_PENDING:
            return SKIPPED
        if order.reserved_until is None or order.reserved_until > deps.now():
            return SKIPPED
        intent_id = order.payment_intent_id
    payment = _current_payment(deps, order_id, intent_id)
    if payment is not None and payment.succeeded:
        return settle(deps, order_id, payment, step="expire_reservation", attempt=attempt)
    if payment is not None and payment.status not in FAILED_PAYMENT:
        payment = deps.payments.cancel_payment(payment.id, order_id=str(order_id))
        if payment.succeeded:  # it succeeded in the meantime
            return settle(deps, order_id, payment, step="expire_reservation", attempt=attempt)
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.PAYMENT_PENDING:
            return SKIPPED
        compensate(session, order, plans.reservation_expired(), step="expire_reservation",
                   attempt=attempt)  # fmt: skip
    return FAILED
