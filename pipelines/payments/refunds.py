"""Refunds: each one a row with its own Stripe idempotency key (``refund_<id>``), so a
retry, a duplicate message or a crash between Stripe's answer and the commit never
refunds twice.

A refund is accepted under the order's row lock, and its amount is counted on the
order (``amount_refunded``) in the same commit: two concurrent requests that together
ask for more than was captured cannot both be accepted, and the database's own check
(``amount_refunded <= amount_captured``) holds whatever the code does. The Stripe call
follows outside the lock (``settle_refund``); a refusal gives the amount back.

The operator's refunds (``POST /v1/admin/orders/{id}/refunds``) and the saga's
compensation use the same rule and the same step.
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
from integrations.errors import PermanentProviderError
from integrations.ports import NotificationKind
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
                   request_hash: str | None = None,
                   requested_by: uuid.UUID | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": uuid.uuid4(), "order_id": order.id, "amount": amount, "currency": order.currency,
        "lines": lines or [], "reason": reason, "source": source, "request_key": request_key,
        "request_hash": request_hash, "requested_by": requested_by, "status": "pending",
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
    None when nothing was ever refunded by the compensation and nothing remains."""
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
                         request_key=compensation_key(len(earlier) + 1))  # fmt: skip
    session.execute(INSERT_REFUND.values(**row))
    order.amount_refunded = order.amount_refunded + amount
    return row["id"]


#: A refund row's status, read under the order's lock.
REFUND_STATUS = select(Refund.status).where(Refund.id == bindparam("b_refund"))


_PENDING = select(Refund.order_id, Refund.amount, Refund.status, Refund.source,
                  Order.payment_intent_id).join(Order, Order.id == Refund.order_id).where(
    Refund.id == bindparam("b_refund"))  # fmt: skip
_SETTLE = (
    update(Refund).where(Refund.id == bindparam("b_refund"), Refund.status == "pending")
    .values(status=bindparam("b_status"), provider_refund_id=bindparam("b_provider"),
            error=bindparam("b_error"), settled_at=bindparam("b_at"), updated_at=bindparam("b_at"))
    .returning(Refund.amount)
)  # fmt: skip


def process_refund(deps: Deps, refund_id: str, *, attempt: int = 1) -> str:
    """The message an accepted operator refund sends (and the sweeper re-sends)."""
    return settle_refund(deps, refund_id, attempt=attempt, mail=True)


def settle_refund(deps: Deps, refund_id: str, *, attempt: int = 1, mail: bool) -> str:
    """Ask Stripe for the refund (key ``refund_<id>``) and keep its outcome: the row
    settled, the order's payment status, the timeline, and - for ``mail`` - the
    customer's e-mail, one per refund. A refusal gives the amount back to the order."""
    with reading(deps) as session:
        row = session.execute(_PENDING, {"b_refund": uuid.UUID(str(refund_id))}).first()
        if row is None or row.status != "pending" or row.payment_intent_id is None:
            return SKIPPED
        order_id, amount = row.order_id, row.amount
        intent_id, source = row.payment_intent_id, row.source
    try:
        refund = deps.payments.refund(order_id=str(order_id), payment_id=intent_id,
                                      amount=amount, key=refund_key(refund_id))  # fmt: skip
    except PermanentProviderError as exc:
        return _refused(deps, refund_id, order_id, error=str(exc), code=exc.code, source=source,
                        attempt=attempt)  # fmt: skip
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
        if source == "return":  # the received return it pays for is now refunded
            mark_refunded(session, order, refund_id, attempt=attempt)
        if mail:
            tell_customer(session, order, NotificationKind.REFUNDED, once_per=str(refund_id),
                          amount=amount)  # fmt: skip
    return SUCCESS


def _refused(deps: Deps, refund_id: str, order_id, *, error: str, code: str | None, source: str,
             attempt: int) -> str:  # fmt: skip
    with begin(deps) as session:
        order = lock_order(session, order_id)
        settled = sql.one(session, _SETTLE, {
            "b_refund": uuid.UUID(str(refund_id)), "b_status": "failed", "b_provider": None,
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
