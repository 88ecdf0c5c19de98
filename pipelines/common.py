"""The step kernel: what every step does the same way. A transaction (``begin``; a
read-only one, ``reading``) and what runs once it commits (``after_commit``); the order
locked (``lock_order``) or read (``read_order``, ``order_lines``); the order moved
(``move``) or its timeline written (``record``); the next message queued through the
outbox (``send_later``), all in one commit.

What a stage adds lives with the stage: the customer's e-mail (``pipelines.mail.claim``),
the compensation (``pipelines.compensation.compensate``), stock leaving with a shipment
(``pipelines.stock.consumption``), payment counts (``pipelines.payments.counts``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog
from psycopg import pq
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from fulfillment.models import Order, OrderEvent, OrderLine
from fulfillment.outbox import outbox_insert
from fulfillment.states import OrderStatus
from fulfillment.transitions import MILESTONES, note_values, transition_values
from monitoring import metrics
from pipelines import locked_order, sql
from pipelines.deps import Deps
from pipelines.locked_order import LinesCache, LockedOrder
from pipelines.outcome import FAILED, SKIPPED, SUCCESS  # noqa: F401 (the steps' outcomes)
from pipelines.saga import BY_STATE, Entry

#: The (order, status) moves this thread committed since the current message began:
#: a step that follows in the same message knows it is the first to act on them.
_entered = threading.local()


def new_message() -> None:
    """Forget the moves of the previous message run on this thread."""
    _entered.moves = set()


def entered_here(order_id: uuid.UUID, status: OrderStatus) -> bool:
    """True when this thread's current message moved the order into ``status``."""
    return (order_id, status) in getattr(_entered, "moves", set())


def _remember_move(order_id: uuid.UUID, status: OrderStatus) -> None:
    if not hasattr(_entered, "moves"):
        _entered.moves = set()
    _entered.moves.add((order_id, status))


@contextmanager
def begin(deps: Deps) -> Iterator[Session]:
    """One transaction; committed when the block ends, rolled back if it raises. What
    was queued with ``after_commit`` runs only once the commit has succeeded."""
    with deps.sessions.begin() as session:
        session.info["now"] = deps.now
        session.info["deps"] = deps
        session.info["after_commit"] = []
        session.info["writes"] = []
        yield session
        if session.info.get("unchanged") and not _pending(session):
            _end_quietly(session)
            return
        _commit_writes(session)
    for callback in session.info["after_commit"]:
        callback()


def _commit_writes(session: Session) -> None:
    """The held orders' changes, then what ``write_at_commit`` queued (the timeline
    entries among it), in the order queued, then the COMMIT, in one round trip
    (``sql.commit_with``). With a savepoint still open they are only sent, and
    SQLAlchemy commits as before; so it does when there is nothing of them to write.
    What the unit of work holds is flushed first."""
    queued = session.info["writes"]
    writes = locked_order.writes(session) + [(statement, [params]) for statement, params in queued]
    queued.clear()
    if not writes:
        return
    if session.in_nested_transaction():
        for statement, params in writes:
            sql.run_many(session, statement, params)
        return
    session.flush()
    sql.commit_with(session, writes)


def write_at_commit(session: Session, statement: Any, params: dict[str, Any]) -> None:
    """Send ``statement`` with the ``begin`` transaction's last writes, in the round trip
    that commits them: for a write whose answer the step does not need, and whose row
    lock should be held for as short a time as possible (a popular product's inventory
    row: taken by the server just before the COMMIT, with no wait on this process
    between). Queued writes go in the order queued, after the order's changes and its
    timeline. Outside a ``begin`` transaction it is sent at once."""
    queued = session.info.get("writes")
    if queued is None:
        sql.run(session, statement, params)
    else:
        queued.append((statement, params))


def send_queued_writes(session: Session) -> None:
    """Send what ``write_at_commit`` queued now, in the order queued: before a statement
    that must follow them (one that takes inventory rows after them)."""
    queued = session.info["writes"]
    for statement, params in queued:
        sql.run(session, statement, params)
    queued.clear()


def unchanged(session: Session) -> str:
    """SKIPPED, the ``begin`` transaction ending with a ROLLBACK rather than a commit:
    the step only locked and read (a duplicate message, an order that moved on). A
    transaction that took a row lock holds a transaction id, so its commit is a WAL
    flush; its rollback is not, and nothing it did is lost. What the step queued or
    changed through the session (``after_commit``, a locked order's fields, the unit
    of work) still commits: the mark cannot drop a write. A statement run straight on
    the connection is not seen: a step that ran one must not call this."""
    session.info["unchanged"] = True
    return SKIPPED


def _pending(session: Session) -> bool:
    return bool(session.info["after_commit"] or session.info["writes"] or session.new
                or session.dirty or session.deleted or locked_order.changed(session))  # fmt: skip


def _end_quietly(session: Session) -> None:
    """End the session's transaction with a ROLLBACK sent through libpq itself:
    psycopg's own rollback forgets every prepared statement of the connection (it
    cannot know that nothing was dropped), and a worker's connection would then parse
    and plan each statement afresh, once per order. psycopg's commit or rollback that
    follows finds the connection idle and sends nothing."""
    if session.in_transaction():
        pgconn = session.connection().connection.driver_connection.pgconn
        if pgconn.transaction_status == pq.TransactionStatus.INTRANS:
            result = pgconn.exec_(b"ROLLBACK")
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise psycopg.OperationalError(pgconn.get_error_message())


@contextmanager
def reading(deps: Deps) -> Iterator[Session]:
    """A read-only transaction (what a step reads before calling a provider), ended
    with a ROLLBACK through libpq (see ``_end_quietly``): nothing here can invalidate
    the connection's prepared statements, the block only reads."""
    with deps.sessions() as session:
        yield session
        _end_quietly(session)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    session.info["after_commit"].append(callback)


class Savepoint:
    """A savepoint in a ``begin`` transaction; rolling back to it also forgets what was
    queued with ``after_commit`` since, as what it counted never happened."""

    def __init__(self, session: Session) -> None:
        self._queued = session.info["after_commit"]
        self._since = len(self._queued)
        self._writes = session.info["writes"]
        self._writes_since = len(self._writes)
        self._orders = locked_order.snapshot(session)
        self._nested = session.begin_nested()

    def commit(self) -> None:
        self._nested.commit()

    def rollback(self) -> None:
        self._nested.rollback()
        del self._queued[self._since :]
        del self._writes[self._writes_since :]
        for order, before in self._orders:
            order.restore(before)


def lock_order(session: Session, order_id: uuid.UUID | str) -> LockedOrder | None:
    """The order, row-locked until the transaction ends: concurrent runs of a step on
    the same order take turns, and each sees what the previous one did. Its lines load
    only if the step reads them. The request that placed the order is bound to the log
    context, so the step's log lines and the messages it queues carry it whichever road
    the message took (a step, a retry, the sweeper, a replay)."""
    order = locked_order.lock(session, uuid.UUID(str(order_id)))
    if order is not None and order.request_id:
        structlog.contextvars.bind_contextvars(request_id=order.request_id)
    return order


#: What a step reads of an order before it calls a provider (no lock, no lines).
_READ = select(
    Order.id, Order.status, Order.created_at, Order.total_amount, Order.currency,
    Order.payment_method, Order.payment_intent_id, Order.refund_due, Order.refund_id,
    Order.reserved_until, Order.capture_method, Order.amount_authorized, Order.amount_captured,
    Order.amount_refunded, Order.capture_due, Order.amount_cancelled, Order.tax_calculation_id,
    Order.tax_transaction_id,
).where(Order.id == bindparam("b_order"))  # fmt: skip
#: An order's lines as (product id, quantity), in product order: the order in which
#: every step takes inventory rows, so two orders never deadlock.
_LINES = (
    select(OrderLine.product_id, OrderLine.quantity)
    .where(OrderLine.order_id == bindparam("b_order")).order_by(OrderLine.product_id)
)  # fmt: skip


#: A timeline entry, written straight to the connection (not through the unit of work).
_COLUMNS = ("order_id", "step", "from_status", "to_status", "attempt", "outcome", "error",
            "details", "duration_ms", "created_at")  # fmt: skip
_EVENT = insert(OrderEvent).values({column: bindparam(f"b_{column}") for column in _COLUMNS})


def write_event(session: Session, values: dict[str, Any]) -> None:
    """A timeline entry given as its columns' values (``transition_values``,
    ``note_values``), sent with the commit (``write_at_commit``): the merchant-event
    trigger on it is deferred to the commit anyway, and the order is locked meanwhile,
    so its entries keep their order."""
    write_at_commit(session, _EVENT, {f"b_{column}": values[column] for column in _COLUMNS})


def read_order(session: Session, order_id: uuid.UUID | str) -> Any:
    """The order's columns a step needs before calling a provider, as a row."""
    return sql.one(session, _READ, {"b_order": uuid.UUID(str(order_id))})


#: Lines of orders this process has read: they never change once the order is placed.
_LINES_SEEN = LinesCache(4096)


def order_lines(session: Session, order_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    lines = _LINES_SEEN.get(order_id)
    if lines is None:
        lines = [tuple(row) for row in sql.rows(session, _LINES, {"b_order": order_id})]
        if lines:  # an order has lines from its first commit; none means no order yet
            _LINES_SEEN.put(order_id, lines)
    return lines


def move(
    session: Session, order: LockedOrder, target: OrderStatus, *, step: str, attempt: int, **kw: Any
) -> None:
    """Transition, record it, queue the next stage's message where the saga map says
    so, and count it once committed. ``kw``: error, details, outcome."""
    now = session.info["now"]()
    before = order.status
    write_event(
        session, transition_values(order, target, step=step, now=now, attempt=attempt, **kw)
    )
    stage = BY_STATE.get(target)
    if stage is not None and stage.entry is Entry.QUEUE:
        send_later(session, stage.message, order_id=order.id)
    after_commit(session, metrics.order_transitions_total.labels(before, target.value).inc)
    order_id = order.id
    after_commit(session, lambda: _remember_move(order_id, target))
    milestone = MILESTONES.get(target)
    if milestone is not None:
        lead_time = (now - order.created_at).total_seconds()
        after_commit(
            session, lambda: metrics.order_lead_time_seconds.labels(milestone).observe(lead_time)
        )


def record(
    session: Session, order: LockedOrder, *, step: str, attempt: int, outcome: str, **kw: Any
) -> None:
    write_event(
        session,
        note_values(
            order, step=step, now=session.info["now"](), outcome=outcome, attempt=attempt, **kw
        ),
    )


def send_later(session: Session, message: tuple[str, str], **kwargs: Any) -> None:
    """Queue ``message`` through the outbox: it leaves only if this transaction commits."""
    session.execute(outbox_insert(message, **{k: str(v) for k, v in kwargs.items()}))
