"""Undoing an order's progress: one plan for every caller, the customer's cancel in the
API (async) and the saga's compensation in the workers (sync).

``plan`` decides from where the order stands what undoing it takes (the stock back, a
status, a refund, an e-mail); ``undo`` applies the part that is the same for every
caller to the locked order and returns the statements to run in the caller's
transaction, each with its parameters. The caller moves the order (``fulfillment.transitions``) and writes the
e-mail its own way: the API queues it; a worker's step calls ``compensate``, which sends
it once the step's commit is done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from fulfillment import stock
from fulfillment.messages import REFUND_PAYMENT, VOID_LABEL
from fulfillment.models import Order
from fulfillment.outbox import outbox_insert
from fulfillment.states import OrderStatus as S
from fulfillment.stock import Statement, StockState
from integrations.ports import NotificationKind
from pipelines.common import move, order_lines, record
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.saga import Compensation


@dataclass(frozen=True)
class Plan:
    #: The saga map's name for it.
    kind: Compensation
    #: The status the order moves to; None leaves it for the refund step to decide.
    target: S | None
    #: Money was, or may yet be, taken: the refund step follows (it finds out which).
    refund: bool
    #: The e-mail that tells the customer, as (kind, data); None when a later step does.
    mail: tuple[str, dict[str, Any]] | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def customer_cancel(order: Order | LockedOrder) -> Plan:
    """The customer cancels before anything shipped."""
    money_possible = order.status != S.PENDING or order.payment_intent_id is not None
    kind = Compensation.REFUND if money_possible else Compensation.RELEASE_AND_CANCEL
    return Plan(kind, S.CANCELLED, refund=money_possible,
                mail=(NotificationKind.CANCELLED.value, {"reason": "customer_request"}))  # fmt: skip


def payment_failed(*, error: str, code: str | None) -> Plan:
    """The card was declined, or the PaymentIntent failed: nothing was taken."""
    return Plan(Compensation.RELEASE_AND_CANCEL, S.CANCELLED, refund=False,
                mail=(NotificationKind.PAYMENT_FAILED.value, {"reason": code or "declined"}),
                error=error, details={"decline_code": code} if code else {})  # fmt: skip


def reservation_expired() -> Plan:
    """No payment came before the reservation's deadline; its PaymentIntent is cancelled."""
    return Plan(Compensation.RELEASE_AND_CANCEL, S.CANCELLED, refund=False,
                mail=(NotificationKind.CANCELLED.value, {"reason": "reservation_expired"}),
                error="reservation expired before payment")  # fmt: skip


def shipping_failed(*, error: str) -> Plan:
    """The goods will not reach the customer: the refund step refunds, moves the order
    to ``refunded`` and tells the customer."""
    return Plan(Compensation.REFUND, None, refund=True, error=error)


def undo(order: Order | LockedOrder, held: Iterable[stock.Held], plan: Plan) -> list[Statement]:
    """Apply ``plan`` to the locked ``order`` (its stock released once, where it is held,
    its refund marked due) and return the statements to execute in the same transaction:
    the stock's release, in (product, location) order (no deadlocks between orders), and
    the refund message. ``held`` is ``stock.held_by(order, its lines)``."""
    statements: list[Statement] = []
    if order.stock_state == StockState.RESERVED:
        statements += [stock.release(h.product_id, h.quantity, h.location_id)
                       for h in sorted(held, key=lambda h: (str(h.product_id), str(h.location_id)))]  # fmt: skip
        order.stock_state = StockState.RELEASED
    if plan.error is not None:
        order.last_error = plan.error
    if plan.refund and order.capture_due:
        order.capture_due = False  # the refund step voids or refunds: nothing to capture
    if plan.refund and not order.refund_due:
        order.refund_due = True
        refund = outbox_insert(REFUND_PAYMENT, order_id=str(order.id), request_id=order.request_id)
        statements.append((refund, {}))
    statements += _void_stray_label(order)
    return statements


# --- label voids (pipelines.shipping.labels) ----------------------------------------------------

#: Statuses in which a label may have been bought without its commit (a worker killed
#: between EasyPost's answer and the commit): undoing such an order voids that label.
LABEL_MAY_EXIST = frozenset({S.FULFILLING, S.ADDRESS_INVALID})


def _void_stray_label(order: Order | LockedOrder) -> list[Statement]:
    """The ``void_label`` message for an order undone after it reached ``fulfilling``
    (also while an operator held it, or it waited for one): the step finds any label
    bought under the order's reference and voids it; for most orders it finds none."""
    stood = {order.status, order.attention_from, getattr(order, "held_from", None)}
    if not stood & LABEL_MAY_EXIST:
        return []
    void = outbox_insert(VOID_LABEL, order_id=str(order.id), request_id=order.request_id)
    return [(void, {})]


def compensate(
    session: Session, order: LockedOrder, plan: Plan, *, step: str, attempt: int
) -> None:
    """A worker's step undoes the order's progress by ``plan`` (the API's cancel runs
    the same plan its own way): stock back, refund queued, status moved, customer told
    once the commit is done."""
    for statement, params in undo(
        order, stock.held_by(order, order_lines(session, order.id)), plan
    ):
        session.connection().execute(statement, params)
    if plan.target is not None:
        move(session, order, plan.target, step=step, attempt=attempt, outcome="failed",
             error=plan.error, details=plan.details)  # fmt: skip
    else:
        record(session, order, step=step, attempt=attempt, outcome="failed", error=plan.error)
    if plan.mail is not None:
        kind, data = plan.mail
        tell_customer(session, order, kind, **data)
