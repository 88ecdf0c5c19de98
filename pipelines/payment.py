"""Steps 2 and 3: take the payment and settle it; the compensation's refund or void,
and reservation expiry.

Stripe is called outside any row lock (a call may take seconds); its idempotency key
(``order_<id>_payment``) makes a repeated call return the same PaymentIntent, and the
order is then moved under a lock only if it is still where the step expects it.
With ``PAYMENT_CAPTURE=shipment`` the charge only authorizes (``authorized``); the
capture follows the first package (``pipelines.capture``). A card that needs its
owner (3-D Secure) leaves the order in ``requires_action`` until Stripe's webhook says
how the authentication went. A payment that succeeds for an order that has meanwhile
been cancelled is refunded, an authorization voided.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from fulfillment.checkpoints import reach
from fulfillment.messages import PROCESS_WEBHOOK, REFUND_PAYMENT
from fulfillment.models import Refund, WebhookEvent
from fulfillment.states import OrderStatus as S
from fulfillment.states import PaymentStatus as P
from fulfillment.states import can_transition
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
    count_payment,
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
from pipelines.refunds import REFUND_STATUS, claim_refund, settle_refund
from pipelines.saga import AWAITING_PAYMENT, HOLDING_PAYMENT
from pipelines.shipping import pack

#: PaymentIntent statuses that mean this attempt to pay has failed for good.
FAILED_PAYMENT = frozenset({"requires_payment_method", "canceled"})
#: What the order shows of each PaymentIntent status.
PAYMENT_STATUS = {
    "requires_action": P.REQUIRES_ACTION, "processing": P.PROCESSING,
    "requires_confirmation": P.PROCESSING, "requires_capture": P.AUTHORIZED,
    "succeeded": P.CAPTURED, "requires_payment_method": P.FAILED, "canceled": P.VOIDED,
}  # fmt: skip
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
            "capture_method": capture_method(deps),
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
    payment = _current_payment(deps, order_id, intent_id)
    if payment is None:
        return SKIPPED
    if holding:
        if payment.status != "canceled":
            return SKIPPED  # still held: the capture takes it when the goods ship
        from pipelines.capture import authorization_lost  # capture builds on this module

        return authorization_lost(deps, order_id, payment, step="settle_payment",
                                  attempt=attempt)  # fmt: skip
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
            held = payment.succeeded or payment.authorized
            if held and order.status == S.CANCELLED and not (order.refund_due or order.refund_id):
                keep_payment(order, payment)
                _refund_later(session, order, step=step, attempt=attempt)
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


def keep_payment(order: LockedOrder, payment: Payment) -> None:
    """Write what Stripe holds of the payment on the locked order: its status, the
    amounts authorized and captured, the capture deadline, and - only while the card
    needs its owner - what Stripe.js needs to let them authenticate."""
    status = PAYMENT_STATUS.get(payment.status, P.PROCESSING)
    if status == P.CAPTURED and order.amount_refunded:
        status = (
            P.PARTIALLY_REFUNDED if order.amount_refunded < order.amount_captured else P.REFUNDED
        )
    _set(order, "payment_status", status.value)
    _set(order, "capture_method", payment.capture_method)
    if payment.authorized:
        _set(order, "amount_authorized", payment.amount_capturable)
        _set(order, "capture_before", payment.capture_before)
    if payment.succeeded:
        _set(order, "amount_authorized", max(order.amount_authorized, payment.amount_received))
        _set(order, "amount_captured", payment.amount_received)
    _set(order, "payment_client_secret", payment.client_secret if payment.needs_customer else None)
    _set(order, "payment_next_action",
         dict(payment.next_action) if payment.needs_customer and payment.next_action else None)  # fmt: skip


def _set(order: LockedOrder, name: str, value) -> None:
    """Set a column only when it changes (the UPDATE then names only what changed)."""
    if getattr(order, name) != value:
        setattr(order, name, value)


def _payment_failed(
    deps: Deps, order_id: str, *, step: str, attempt: int, error: str, code: str | None
) -> str:
    """Compensation ``release_and_cancel``: the stock back, cancelled, customer told."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in AWAITING_PAYMENT:
            return SKIPPED
        pick_up_payment_events(session, order, waiting=False)
        _set(order, "payment_status", P.FAILED.value)
        count_payment(session, "authorize" if order.capture_method == "manual" else "charge",
                      "failed")  # fmt: skip
        _set(order, "payment_client_secret", None)
        _set(order, "payment_next_action", None)
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


class ChargeOutcomeUnknown(Exception):
    """A cancelled order's charge may still land at Stripe: its refund step waits
    (Dramatiq's retry, with backoff) rather than conclude that nothing was taken."""


#: Stripe's search is not read-after-write: a new PaymentIntent becomes searchable "in
#: under 1 minute". A charge started before the cancel lands within its call (and its
#: retries). Until this long after the cancel, a search that finds nothing proves nothing.
CHARGE_SETTLES_WITHIN = timedelta(minutes=2)


def refund_payment(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """The compensation's money step: void an authorization that was never captured
    (or a PaymentIntent that never succeeded), refund what was captured and not yet
    refunded (a refund row of its own, ``pipelines.refunds``), then settle the order:
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
    payment = _current_payment(deps, order_id, intent_id)
    if payment is not None and not payment.succeeded and payment.status not in FAILED_PAYMENT:
        payment = deps.payments.cancel_payment(payment.id, order_id=str(order_id))
    refund_id = None
    if payment is not None and payment.succeeded:  # it may have cleared while cancelling
        with begin(deps) as session:
            order = lock_order(session, order_id)
            if order is None or not order.refund_due:
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
            landed = True  # the charge landed meanwhile: run again with its intent
        else:
            landed = False
            if payment is None and deps.now() - order.status_changed_at < CHARGE_SETTLES_WITHIN:
                raise ChargeOutcomeUnknown(f"order {order_id}: no PaymentIntent found yet")
            outcome = _refund_outcome(session, refund_id)
            if outcome is not None and outcome.status == "failed":
                _refund_refused(session, order, payment, error=outcome.error, attempt=attempt)
                return FAILED
            if outcome is not None and outcome.status == "pending":
                return SKIPPED  # another run is settling it, and finishes the order
            _settle_compensation(session, order, payment, refund_id=refund_id, attempt=attempt)
    if landed:
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


def _refund_refused(session: Session, order: LockedOrder, payment: Payment, *, error: str | None,
                    attempt: int) -> None:  # fmt: skip
    """Stripe refused the compensation's refund: the money is still taken. The refund
    stays due, and an operator decides (their resume tries a new refund)."""
    keep_payment(order, payment)
    if order.capture_due:
        order.capture_due = False
    reason = f"the refund of the compensation was refused by Stripe: {error}"
    if order.status == S.NEEDS_ATTENTION:
        order.last_error = reason
        record(session, order, step="refund_payment", attempt=attempt, outcome="refund_refused",
               error=reason)  # fmt: skip
        return
    order.attention_from = order.status
    move(session, order, S.NEEDS_ATTENTION, step="refund_payment", attempt=attempt,
         outcome="refund_refused", error=reason, reopen=True)  # fmt: skip


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
    payment = _current_payment(deps, order_id, intent_id)
    if payment is not None and (payment.succeeded or payment.authorized):
        return settle(deps, order_id, payment, step="expire_reservation", attempt=attempt)
    if payment is not None and payment.status not in FAILED_PAYMENT:
        payment = deps.payments.cancel_payment(payment.id, order_id=str(order_id))
        if payment.succeeded or payment.authorized:  # it went through in the meantime
            return settle(deps, order_id, payment, step="expire_reservation", attempt=attempt)
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in WAITING:
            return SKIPPED
        if payment is not None:
            keep_payment(order, payment)  # cancelled: voided, and no secret kept
        _set(order, "payment_client_secret", None)
        _set(order, "payment_next_action", None)
        compensate(session, order, plans.reservation_expired(), step="expire_reservation",
                   attempt=attempt)  # fmt: skip
    return FAILED
