"""Steps 2 and 3: take the payment and settle it, and reservation expiry (the
compensation's refund or void is ``pipelines.payments.compensation``).

Stripe is called outside any row lock (a call may take seconds); its idempotency key
(``order_<id>_payment``) makes a repeated call return the same PaymentIntent, and the
order is then moved under a lock only if it is still where the step expects it.
With ``PAYMENT_CAPTURE=shipment`` the charge only authorizes (``authorized``); the
capture follows the first package (``pipelines.payments.capture``). A card that needs its
owner (3-D Secure) leaves the order in ``requires_action`` until Stripe's webhook says
how the authentication went. A payment that succeeds for an order that has meanwhile
been cancelled is refunded, an authorization voided: the charge's commit writes the
PaymentIntent's id on the order, where the refund step looks before concluding anything.
Money captured by the charge (``PAYMENT_CAPTURE=order``) has the order's tax recorded at
Stripe Tax before the commit that keeps it (``pipelines.payments.tax``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from fulfillment.messages import PROCESS_WEBHOOK, REFUND_PAYMENT
from fulfillment.models import WebhookEvent
from fulfillment.states import OrderStatus as S
from fulfillment.states import PaymentStatus as P
from integrations.errors import PermanentProviderError
from integrations.ports import NotificationKind, Payment
from pipelines import compensation as plans
from pipelines import sql
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
    send_later,
)
from pipelines.compensation import compensate
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.payments.authorization import authorization_lost, keep_payment, set_changed
from pipelines.payments.counts import count_payment
from pipelines.payments.tax import keep_sale, record_sale
from pipelines.saga import AWAITING_PAYMENT, HOLDING_PAYMENT
from pipelines.shipping.ship import pack

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
            "amount": order.total_amount - order.amount_cancelled,  # less units cancelled
            "currency": order.currency,
            "payment_method": order.payment_method,
            "capture_method": capture_method(deps),
        }
    if deps.now() - created_at > KEY_LIFETIME_MARGIN:
        earlier = deps.payments.find_payment(str(order_id))
        if earlier is not None and earlier.status not in FAILED_PAYMENT:
            return settle(deps, order_id, earlier, step="request_payment", attempt=attempt,
                          read=order)  # fmt: skip
    try:
        payment = deps.payments.charge(**charge)
    except PermanentProviderError as exc:
        return _payment_failed(
            deps, order_id, step="request_payment", attempt=attempt, error=str(exc), code=exc.code
        )
    return settle(deps, order_id, payment, step="request_payment", attempt=attempt, read=order)


def capture_method(deps: Deps) -> str:
    return "manual" if deps.settings.payment_capture == "shipment" else "automatic"


def holds_authorization(order) -> bool:
    """The order went on with an authorization that is not captured yet."""
    return (order.status in HOLDING_PAYMENT and order.capture_method == "manual"
            and order.amount_captured == 0)  # fmt: skip


def settle_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Ask Stripe where the order's payment stands (after a webhook, or when stalled)."""
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None:
            return SKIPPED
        holding = holds_authorization(order) and not order.capture_due
        if order.status not in (*AWAITING_PAYMENT, S.CANCELLED) and not holding:
            return SKIPPED  # settled already (a webhook after the charge answered): no call
        if order.status == S.CANCELLED and (order.refund_due or order.refund_id):
            return SKIPPED  # its refund is already under way
        intent_id = order.payment_intent_id
    payment = current_payment(deps, order_id, intent_id)
    if payment is None:
        return SKIPPED
    if holding:
        if payment.status != "canceled":
            return SKIPPED  # still held: the capture takes it when the goods ship
        return authorization_lost(deps, order_id, payment, step="settle_payment",
                                  attempt=attempt)  # fmt: skip
    return settle(deps, order_id, payment, step="settle_payment", attempt=attempt, read=order)


def current_payment(deps: Deps, order_id: str, intent_id: str | None) -> Payment | None:
    """The order's PaymentIntent: by its id when the order knows it, else by search."""
    if intent_id:
        return deps.payments.retrieve_payment(intent_id)
    return deps.payments.find_payment(str(order_id))


def settle(deps: Deps, order_id: str, payment: Payment, *, step: str, attempt: int,
           read: Any = None) -> str:  # fmt: skip
    """Keep what Stripe says of the charge. ``read``: the order as the caller read it
    before its call; money captured (an automatic charge) has its tax recorded first
    and kept in the same commit (``pipelines.payments.tax``)."""
    if payment.status in FAILED_PAYMENT:
        return _payment_failed(
            deps,
            order_id,
            step=step,
            attempt=attempt,
            error=payment.failure_message or payment.status,
            code=payment.failure_code,
        )
    sale = record_sale(deps, read) if payment.succeeded else None
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None:
            return SKIPPED
        keep_sale(session, order, sale, step=step, attempt=attempt)
        learnt = order.payment_intent_id is None
        if learnt:
            order.payment_intent_id = payment.id
        if order.status not in AWAITING_PAYMENT:
            held = payment.succeeded or payment.authorized
            if held and order.status == S.CANCELLED and not (order.refund_due or order.refund_id):
                keep_payment(order, payment)
                _refund_later(session, order, step=step, attempt=attempt)
            elif held and order.status == S.CANCELLED and order.refund_due and learnt:
                # cancelled while this charge was in flight: the refund step may have
                # looked before this commit and found no PaymentIntent; it runs again
                # now, with this one (pipelines.payments.compensation)
                send_later(session, REFUND_PAYMENT, order_id=order.id)
            return SKIPPED
        keep_payment(order, payment)
        settled, in_flight = payment.succeeded or payment.authorized, order.status == S.RESERVED
        if in_flight:
            move(session, order, S.PAYMENT_PENDING, step=step, attempt=attempt,
                 details={"payment_intent": payment.id})  # fmt: skip
        if settled or in_flight:
            pick_up_payment_events(session, order, waiting=not settled)
        if not settled:
            if payment.needs_customer and order.status == S.PAYMENT_PENDING:
                # the storefront completes it with Stripe.js; Stripe's webhook follows
                count_payment(session, "requires_action", "succeeded")
                move(session, order, S.REQUIRES_ACTION, step=step, attempt=attempt,
                     details={"payment_intent": payment.id})  # fmt: skip
            return SUCCESS  # the webhook or the sweeper settles it later
        target = S.AUTHORIZED if payment.authorized else S.PAID
        count_payment(session, "authorize" if payment.authorized else "charge", "succeeded")
        move(session, order, target, step=step, attempt=attempt,
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
        set_changed(order, "payment_status", P.FAILED.value)
        count_payment(session, "authorize" if order.capture_method == "manual" else "charge",
                      "failed")  # fmt: skip
        set_changed(order, "payment_client_secret", None)
        set_changed(order, "payment_next_action", None)
        compensate(session, order, plans.payment_failed(error=error, code=code), step=step,
                   attempt=attempt)  # fmt: skip
    return FAILED


#: The order's payment events the API stored while its charge was in flight.
_STORED_EVENTS = (WebhookEvent.provider == "stripe", WebhookEvent.processed_at.is_(None),
                  WebhookEvent.order_id == bindparam("of_order"))  # fmt: skip


_SETTLE_STORED = update(WebhookEvent).where(*_STORED_EVENTS).values(processed_at=bindparam("b_at"))
_WAITING_EVENTS = select(WebhookEvent.id).where(*_STORED_EVENTS)


def pick_up_payment_events(session: Session, order: LockedOrder, *, waiting: bool) -> None:
    """Payment events that arrived while the charge was in flight (``api.intake.providers``
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


#: Orders a reservation deadline applies to: waiting on Stripe, or on the customer.
WAITING = (S.PAYMENT_PENDING, S.REQUIRES_ACTION)


def expire_reservation(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """An order left waiting for its payment past its deadline (Stripe still
    processing, or a customer who never authenticated): settle it if the money came in
    after all, otherwise cancel the PaymentIntent, release the stock, cancel and tell
    the customer."""
    with reading(deps) as session:
        order = read_order(session, order_id)
        if order is None or order.status not in WAITING:
            return SKIPPED
        if order.reserved_until is None or order.reserved_until > deps.now():
            return SKIPPED
        intent_id = order.payment_intent_id
    payment = current_payment(deps, order_id, intent_id)
    if payment is not None and (payment.succeeded or payment.authorized):
        return settle(deps, order_id, payment, step="expire_reservation", attempt=attempt,
                      read=order)  # fmt: skip
    if payment is not None and payment.status not in FAILED_PAYMENT:
        payment = deps.payments.cancel_payment(payment.id, order_id=str(order_id))
        if payment.succeeded or payment.authorized:  # it went through in the meantime
            return settle(deps, order_id, payment, step="expire_reservation", attempt=attempt,
                          read=order)  # fmt: skip
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in WAITING:
            return SKIPPED
        if payment is not None:
            keep_payment(order, payment)  # cancelled: voided, and no secret kept
        set_changed(order, "payment_client_secret", None)
        set_changed(order, "payment_next_action", None)
        compensate(session, order, plans.reservation_expired(), step="expire_reservation",
                   attempt=attempt)  # fmt: skip
    return FAILED
