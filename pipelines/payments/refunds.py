"""Refunds: each one a row with its own Stripe idempotency key (``refund_<id>``), so a
retry, a duplicate message or a crash between Stripe's answer and the commit never
refunds twice.

A refund is accepted under the order's row lock, and its amount is counted on the
order (``amount_refunded``) in the same commit: two concurrent requests that together
ask for more than was captured cannot both be accepted, and the database's own check
(``amount_refunded <= amount_captured``) holds whatever the code does. The Stripe call
follows outside the lock (``settle_refund``); a refusal gives the amount back.

The operator's refunds (``POST /v1/admin/orders/{id}/refunds``) and the saga's
compensation use the same rule and the same step. A refund's ``tax_amount`` (its lines'
tax shares, its shipping's tax) is reversed at Stripe Tax once the money is back, in the
commit that keeps its success (``pipelines.payments.tax``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import Executable

from fulfillment.messages import PROCESS_REFUND, REFUND_PAYMENT
from fulfillment.models import Order, Refund
from fulfillment.outbox import outbox_insert
from fulfillment.states import OrderStatus as S
from fulfillment.states import PaymentStatus as P
from fulfillment.states import can_transition
from integrations.errors import PermanentProviderError
from integrations.ports import NotificationKind
from integrations.ports import Refund as ProviderRefund
from pipelines import sql
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    lock_order,
    move,
    reading,
    record,
    send_later,
)
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.payments import tax
from pipelines.payments.counts import count_payment
from pipelines.returns.label import mark_refunded


class RefundRefused(Exception):
    """The refund cannot be accepted; ``code`` says why (the API answers 409)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def refund_key(refund_id: uuid.UUID | str) -> str:
    """Stripe's idempotency key for one refund row."""
    return f"refund_{refund_id}"


def refundable(order) -> int:
    """What may still be refunded: captured, less what is refunded or being refunded."""
    return order.amount_captured - order.amount_refunded


def check_refund(order, amount: int) -> None:
    """Raise ``RefundRefused`` unless ``amount`` may be refunded from ``order`` now."""
    if order.amount_captured == 0:
        raise RefundRefused("nothing_captured",
                            "nothing has been captured for this order, so nothing can be "
                            "refunded (an authorization is voided by cancelling the order)",
                            payment_status=order.payment_status)  # fmt: skip
    if amount > refundable(order):
        raise RefundRefused("refund_exceeds_captured",
                            f"a refund of {amount} would exceed what remains refundable "
                            f"({refundable(order)} of {order.amount_captured} captured)",
                            refundable=refundable(order), requested=amount)  # fmt: skip


def payment_status_after_refunds(order) -> str:
    if order.amount_refunded <= 0:
        return P.CAPTURED.value
    if order.amount_refunded >= order.amount_captured:
        return P.REFUNDED.value
    return P.PARTIALLY_REFUNDED.value


def new_refund_row(order, *, amount: int, source: str, request_key: str,
                   lines: list | None = None, reason: str | None = None,
                   request_hash: str | None = None, requested_by: uuid.UUID | None = None,
                   shipping: int = 0, tax: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A refund row: ``amount`` in all; of it, ``shipping`` (its tax aside) and the tax
    (``tax``, else the lines' tax shares) that Stripe Tax reverses once it succeeds."""
    if tax is None:
        tax = sum(line.get("tax", 0) for line in lines or [])
    return {
        "id": uuid.uuid4(), "order_id": order.id, "amount": amount, "currency": order.currency,
        "lines": lines or [], "reason": reason, "source": source, "request_key": request_key,
        "request_hash": request_hash, "requested_by": requested_by, "status": "pending",
        "tax_amount": tax, "shipping_amount": shipping,
    }  # fmt: skip


#: A refund row, once per (order, source, request key): an operator's Idempotency-Key
#: and the saga's own keys live in different spaces.
INSERT_REFUND = insert(Refund).on_conflict_do_nothing(
    constraint="uq_refunds_order_source_request_key"
)


def accept_refund(order: Order, *, amount: int, source: str, request_key: str,
                  **fields: Any) -> tuple[dict[str, Any], list[Executable]]:  # fmt: skip
    """A refund someone asked for (an operator's, or a received return's), accepted by the
    one rule, under the order's row lock the caller holds: ``RefundRefused`` unless
    ``amount`` is still refundable; else the refund row, its amount counted on the order,
    and the statements that keep both and queue its Stripe call through the outbox
    (``process_refund``), for the caller to run, in order, in its transaction (the API's
    async session or a step's alike)."""
    check_refund(order, amount)
    row = new_refund_row(order, amount=amount, source=source, request_key=request_key, **fields)
    order.amount_refunded += amount
    return row, [INSERT_REFUND.values(**row),
                 outbox_insert(PROCESS_REFUND, refund_id=str(row["id"]),
                               request_id=order.request_id)]  # fmt: skip


#: Statuses of an order that must keep no money (``pipelines.saga.UNPAID_STATES``
#: less ``rejected``, which never took any).
KEEPS_NOTHING = frozenset({S.CANCELLED, S.REFUNDED})
#: The keys of an operator's refunds, whatever the client spelled.
OPERATOR = "operator"
#: The compensation's refunds of an order, latest first.
_COMPENSATIONS = (
    select(Refund.id, Refund.status)
    .where(Refund.order_id == bindparam("b_order"), Refund.source == "compensation")
    .order_by(Refund.created_at.desc(), Refund.request_key.desc())
)  # fmt: skip


def compensation_key(attempt: int) -> str:
    """The n-th compensation refund's key: ``compensation``, then ``compensation_2``..."""
    return "compensation" if attempt <= 1 else f"compensation_{attempt}"


def claim_refund(session, order: LockedOrder) -> uuid.UUID | None:
    """The compensation's refund of everything still refundable, as a row, under the
    order's lock: the one under way (found again when the step is retried); the refused
    one while the order waits for an operator; a new one with the next key for what is
    refundable (first, after an operator resumed the order from a refusal, or for an
    operator's refund refused after the compensation ran); else the latest one made.
    None when nothing was ever refunded by the compensation and nothing remains. A new
    one carries the lines, shipping and tax no refund has taken yet, so that its success
    reverses the rest of the order's tax (``pipelines.payments.tax.left_to_give_back``)."""
    earlier = session.execute(_COMPENSATIONS, {"b_order": order.id}).all()
    pending = next((row.id for row in earlier if row.status == "pending"), None)
    if pending is not None:
        return pending
    if earlier and earlier[0].status == "failed" and order.status == S.NEEDS_ATTENTION:
        return earlier[0].id  # refused, and no operator has resumed the order yet
    amount = refundable(order)
    if amount <= 0:  # all given back: the latest refund made, if any
        return next((row.id for row in earlier if row.status == "succeeded"), None)
    row = new_refund_row(order, amount=amount, source="compensation",
                         request_key=compensation_key(len(earlier) + 1),
                         **tax.left_to_give_back(session, order))  # fmt: skip
    session.execute(INSERT_REFUND.values(**row))
    order.amount_refunded = order.amount_refunded + amount
    return row["id"]


#: A refund row's status, read under the order's lock.
REFUND_STATUS = select(Refund.status).where(Refund.id == bindparam("b_refund"))


_PENDING = select(Refund.order_id, Refund.amount, Refund.status, Refund.source,
                  Refund.provider_refund_id, Order.payment_intent_id, Refund.tax_amount,
                  Refund.lines, Refund.shipping_amount, Refund.tax_reversal_id,
                  Order.tax_transaction_id).join(
    Order, Order.id == Refund.order_id).where(Refund.id == bindparam("b_refund"))  # fmt: skip
#: A refund Stripe took but has not settled yet (``pending``): its id kept, once.
_AWAIT = (
    update(Refund).where(Refund.id == bindparam("b_refund"), Refund.status == "pending",
                         Refund.provider_refund_id.is_(None))
    .values(provider_refund_id=bindparam("b_provider"), updated_at=bindparam("b_at"))
    .returning(Refund.id)
)  # fmt: skip
#: A refund that had succeeded and that Stripe failed afterwards (a closed card).
_UNDO = (
    update(Refund).where(Refund.id == bindparam("b_refund"), Refund.status == "succeeded")
    .values(status="failed", error=bindparam("b_error"), updated_at=bindparam("b_at"))
    .returning(Refund.amount)
)  # fmt: skip
#: An order's refund by Stripe's id for it.
_BY_PROVIDER = select(Refund.id, Refund.status, Refund.source).where(
    Refund.order_id == bindparam("b_order"), Refund.provider_refund_id == bindparam("b_provider")
)
_SETTLE = (
    update(Refund).where(Refund.id == bindparam("b_refund"), Refund.status == "pending")
    .values(status=bindparam("b_status"), provider_refund_id=bindparam("b_provider"),
            error=bindparam("b_error"), settled_at=bindparam("b_at"), updated_at=bindparam("b_at"))
    .returning(Refund.amount, Refund.tax_amount, Refund.shipping_amount)
)  # fmt: skip


def process_refund(deps: Deps, refund_id: str, *, attempt: int = 1) -> str:
    """The message an accepted operator refund sends (and the sweeper re-sends)."""
    return settle_refund(deps, refund_id, attempt=attempt, mail=True)


def settle_refund(deps: Deps, refund_id: str, *, attempt: int = 1, mail: bool) -> str:
    """Ask Stripe for the refund (key ``refund_<id>``) and keep its outcome: the row
    settled, the order's payment status, the timeline, and - for ``mail`` (never for the
    compensation's, whose order's own e-mail says it) - the customer's e-mail, one per
    refund. A refusal gives the amount back to the order.

    Stripe settles some refunds later (``pending``): the row keeps Stripe's id and stays
    pending; a refund event (``refund_changed``) or the scheduler's poll runs this again,
    which then reads the refund instead of asking for it, and a compensation's order is
    finished by its own step once the money is back.

    Its tax is reversed at Stripe Tax (reference ``refund_<id>``) between Stripe's answer
    and the commit: a transient failure retries the message (the refund is found by its
    key), a refusal keeps the refund and writes the error on the timeline. A refund that
    succeeded while its order had no sale kept has only its tax reversed, once the
    commit that keeps the sale sends it here again."""
    with reading(deps) as session:
        row = session.execute(_PENDING, {"b_refund": uuid.UUID(str(refund_id))}).first()
    if row is not None and row.status == "succeeded" and tax.reversal_due(row):
        return tax.reverse_made_refund(deps, refund_id, row, attempt=attempt)
    if row is None or row.status != "pending" or row.payment_intent_id is None:
        return SKIPPED
    order_id, amount = row.order_id, row.amount
    intent_id, source = row.payment_intent_id, row.source
    later = row.provider_refund_id  # asked for already: Stripe is settling it
    try:
        if later is not None:
            refund = deps.payments.retrieve_refund(later)
        else:
            refund = deps.payments.refund(order_id=str(order_id), payment_id=intent_id,
                                          amount=amount, key=refund_key(refund_id))  # fmt: skip
    except PermanentProviderError as exc:
        return _refused(deps, refund_id, order_id, error=str(exc), code=exc.code, source=source,
                        attempt=attempt)  # fmt: skip
    if not refund.given_back:
        return _refused(deps, refund_id, order_id, error=_lost(refund), code=refund.failure_reason,
                        source=source, attempt=attempt, provider=refund.id)  # fmt: skip
    if not refund.final:
        return _awaiting(deps, refund_id, order_id, refund, attempt=attempt)
    reversal = tax.reverse_refund(deps, refund_id, row)  # the money is back: its tax too
    mail = mail and source != "compensation"
    with begin(deps) as session:
        order = lock_order(session, order_id)
        settled = sql.one(session, _SETTLE, {
            "b_refund": uuid.UUID(str(refund_id)), "b_status": "succeeded",
            "b_provider": refund.id, "b_error": None, "b_at": deps.now()})  # fmt: skip
        if order is None or settled is None:
            return SKIPPED
        order.payment_status = payment_status_after_refunds(order)
        count_payment(session, "refund", "succeeded")
        record(session, order, step="refund", attempt=attempt, outcome="refunded",
               details={"refund": str(refund_id), "amount": amount,
                        "provider_refund": refund.id})  # fmt: skip
        tax.keep_reversal(session, order, refund_id, reversal, attempt=attempt)
        if source == "return":  # the received return it pays for is now refunded
            mark_refunded(session, order, refund_id, attempt=attempt)
        if mail:
            tell_customer(session, order, NotificationKind.REFUNDED, once_per=str(refund_id),
                          amount=amount, tax_amount=settled.tax_amount,
                          shipping_amount=settled.shipping_amount)  # fmt: skip
        if later is not None and source == "compensation" and order.refund_due:
            send_later(session, REFUND_PAYMENT, order_id=order.id)  # its step finishes it
    return SUCCESS


def _lost(refund: ProviderRefund) -> str:
    return (f"Stripe {refund.status} refund {refund.id}: "
            f"{refund.failure_reason or 'no reason given'}")  # fmt: skip


def _awaiting(deps: Deps, refund_id: str, order_id, refund: ProviderRefund, *,
              attempt: int) -> str:  # fmt: skip
    """Stripe took the refund and settles it later: the row keeps Stripe's id, pending."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        kept = sql.one(session, _AWAIT, {"b_refund": uuid.UUID(str(refund_id)),
                                         "b_provider": refund.id, "b_at": deps.now()})  # fmt: skip
        if order is not None and kept is not None:
            record(session, order, step="refund", attempt=attempt, outcome="refund_pending",
                   details={"refund": str(refund_id), "provider_refund": refund.id,
                            "status": refund.status})  # fmt: skip
    return SKIPPED


def refund_changed(deps: Deps, order_id: str, provider_refund_id: str, *, attempt: int = 1) -> str:
    """A refund event: one of the order's refunds changed at Stripe after its call
    answered. Events come late, twice and out of order, so the refund as Stripe holds it
    now decides: a pending one is settled (or refused); one that had succeeded and that
    Stripe failed since (a closed card) gives its amount back and goes to an operator."""
    with reading(deps) as session:
        row = session.execute(_BY_PROVIDER, {"b_order": uuid.UUID(str(order_id)),
                                             "b_provider": provider_refund_id}).first()  # fmt: skip
    if row is None:
        return SKIPPED  # not one of ours (made in the dashboard), or not kept yet
    if row.status == "pending":
        return settle_refund(deps, str(row.id), attempt=attempt, mail=True)
    if row.status != "succeeded":
        return SKIPPED
    refund = deps.payments.retrieve_refund(provider_refund_id)
    if refund.given_back:
        return SKIPPED
    return _undone(deps, str(row.id), order_id, refund, attempt=attempt)


def _undone(deps: Deps, refund_id: str, order_id, refund: ProviderRefund, *,
            attempt: int) -> str:  # fmt: skip
    """A refund that had succeeded failed at Stripe: the customer did not get the money.
    Its amount counts as not refunded again, and an operator is asked to give it back
    another way (the order to ``needs_attention`` where it may go; the timeline and the
    order's last error say it either way)."""
    error = f"{_lost(refund)}, after it had succeeded: the customer has not received it"
    with begin(deps) as session:
        order = lock_order(session, order_id)
        undone = sql.one(session, _UNDO, {"b_refund": uuid.UUID(str(refund_id)), "b_error": error,
                                          "b_at": deps.now()})  # fmt: skip
        if order is None or undone is None:
            return SKIPPED
        order.amount_refunded = order.amount_refunded - undone.amount
        order.payment_status = payment_status_after_refunds(order)
        count_payment(session, "refund", "failed")
        order.last_error = error
        if can_transition(S(order.status), S.NEEDS_ATTENTION, reopen=True):
            order.attention_from = order.status
            move(session, order, S.NEEDS_ATTENTION, step="refund", attempt=attempt,
                 outcome="refund_failed", error=error,
                 details={"refund": str(refund_id), "provider_refund": refund.id}, reopen=True)  # fmt: skip
        else:
            record(session, order, step="refund", attempt=attempt, outcome="refund_failed",
                   error=error, details={"refund": str(refund_id), "provider_refund": refund.id})  # fmt: skip
    return FAILED


def _refused(deps: Deps, refund_id: str, order_id, *, error: str, code: str | None, source: str,
             attempt: int, provider: str | None = None) -> str:  # fmt: skip
    with begin(deps) as session:
        order = lock_order(session, order_id)
        settled = sql.one(session, _SETTLE, {
            "b_refund": uuid.UUID(str(refund_id)), "b_status": "failed", "b_provider": provider,
            "b_error": error, "b_at": deps.now()})  # fmt: skip
        if order is None or settled is None:
            return SKIPPED
        order.amount_refunded = order.amount_refunded - settled.amount
        order.payment_status = payment_status_after_refunds(order)
        count_payment(session, "refund", "failed")
        record(session, order, step="refund", attempt=attempt, outcome="refund_refused",
               error=error, details={"refund": str(refund_id), "code": code})  # fmt: skip
        if source == "compensation":
            _to_operator(session, order, error=error, attempt=attempt)
        elif S(order.status) in KEEPS_NOTHING and not order.refund_due:
            # given back to an order that must keep nothing (its compensation ran while
            # this refund was under way): the compensation refunds it now
            order.refund_due = True
            send_later(session, REFUND_PAYMENT, order_id=order.id)
    return FAILED


def _to_operator(session, order: LockedOrder, *, error: str, attempt: int) -> None:
    """A compensation's refund refused: the money is still taken, the refund stays due,
    and the order goes to an operator in the commit that keeps the refusal (so no other
    run of the step can try again on its own meanwhile); their resume tries a new one."""
    reason = f"Stripe refused the compensation's refund: {error}"
    order.last_error = reason
    if order.status == S.NEEDS_ATTENTION:
        return
    order.attention_from = order.status
    move(session, order, S.NEEDS_ATTENTION, step="refund", attempt=attempt,
         outcome="refund_refused", error=reason, reopen=True)  # fmt: skip
