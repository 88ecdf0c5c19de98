"""A step's last writes and its commit (``pipelines.common.begin``): the held order's
changes and its timeline entries are sent with the COMMIT in one round trip, all of
them or none, in the order they were made; a savepoint rolled back takes its entries
with it."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import select

from fulfillment.db import create_sync_db_engine
from fulfillment.models import OrderEvent
from fulfillment.states import OrderStatus as S
from pipelines import sql
from pipelines.common import (
    Savepoint,
    after_commit,
    begin,
    lock_order,
    read_order,
    reading,
    record,
    write_event,
)
from tests.support.fakes import FakeCarrier, FakeMailer, FakePayments
from tests.support.steps import given_order, make_deps


@pytest.fixture
def deps(settings, db):
    engine = create_sync_db_engine(settings, pool_size=1)
    yield make_deps(engine, settings, FakePayments(), FakeMailer(), FakeCarrier())
    engine.dispose()


def _steps(deps, order_id: str) -> list[str]:
    with reading(deps) as session:
        return list(session.scalars(select(OrderEvent.step).where(
            OrderEvent.order_id == uuid.UUID(order_id)).order_by(OrderEvent.id)))  # fmt: skip


def _waits(trace: str) -> int:
    """The times the client waited on the server: each simple query, each Sync."""
    return sum(1 for line in trace.splitlines()
               if line.startswith("F\t") and line.split("\t")[2].startswith(("Query", "Sync")))  # fmt: skip


def test_the_orders_change_its_entries_and_the_commit_wait_on_the_server_once(deps):
    # Given an order, and the lock statement already prepared on the worker connection
    order_id, _ = given_order(deps, deps.sessions.kw["bind"], at=S.RESERVED)
    with begin(deps) as session:
        lock_order(session, order_id)
    before = _steps(deps, order_id)

    # When a step locks it, changes it and writes two timeline entries, traced by libpq
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace"
        with path.open("w") as out, begin(deps) as session:
            pgconn = sql.driver_connection(session).pgconn
            pgconn.trace(out.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            order = lock_order(session, order_id)
            order.refund_due = True
            record(session, order, step="first", attempt=1, outcome="success")
            record(session, order, step="second", attempt=1, outcome="success")
        pgconn.untrace()
        trace = path.read_text()

    # Then it waited three times: BEGIN, the lock, and the UPDATE, both INSERTs and the
    # COMMIT together (one at a time, that was six); all of it is stored, in order
    assert _waits(trace) == 3, trace
    assert "COMMIT" in trace
    with reading(deps) as session:
        assert read_order(session, order_id).refund_due is True
    assert _steps(deps, order_id) == [*before, "first", "second"]


def test_a_failing_last_write_keeps_nothing_and_runs_nothing_after_the_commit(deps):
    # Given an order
    order_id, _ = given_order(deps, deps.sessions.kw["bind"], at=S.RESERVED)
    before = _steps(deps, order_id)
    ran = []

    # When a step changes it and writes an entry, but another of its entries cannot be
    # stored (it names an order that does not exist)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), begin(deps) as session:
        order = lock_order(session, order_id)
        order.refund_due = True
        record(session, order, step="kept?", attempt=1, outcome="success")
        write_event(session, {
            "order_id": uuid.uuid4(), "step": "orphan", "from_status": "reserved",
            "to_status": "reserved", "attempt": 1, "outcome": "success", "error": None,
            "details": {}, "duration_ms": None, "created_at": datetime.now(UTC)})  # fmt: skip
        after_commit(session, lambda: ran.append("after"))

    # Then none of the transaction is kept, what waited on its commit did not run, and
    # the connection serves the next step
    with reading(deps) as session:
        assert read_order(session, order_id).refund_due is False
    assert _steps(deps, order_id) == before
    assert ran == []
    with begin(deps) as session:
        record(session, lock_order(session, order_id), step="next", attempt=1, outcome="success")
    assert _steps(deps, order_id) == [*before, "next"]


def test_a_savepoint_rolled_back_takes_its_entries_with_it(deps):
    order_id, _ = given_order(deps, deps.sessions.kw["bind"], at=S.RESERVED)
    before = _steps(deps, order_id)
    # Given a step that writes an entry inside a savepoint, rolls the savepoint back,
    # then writes another
    with begin(deps) as session:
        order = lock_order(session, order_id)
        trying = Savepoint(session)
        record(session, order, step="undone", attempt=1, outcome="success")
        trying.rollback()
        record(session, order, step="kept", attempt=1, outcome="success")
    # Then only the second is on the timeline
    assert _steps(deps, order_id) == [*before, "kept"]
