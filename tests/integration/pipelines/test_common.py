"""What every step shares (``pipelines.common``): a step's read-only transaction keeps
the connection's prepared statements; a step that only locked ends without a commit,
and the mark that says so never drops a write."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from fulfillment.db import create_sync_db_engine
from fulfillment.states import OrderStatus as S
from pipelines.common import (
    SKIPPED,
    after_commit,
    begin,
    lock_order,
    read_order,
    reading,
    unchanged,
)
from tests.support.fakes import FakeCarrier, FakeMailer, FakePayments
from tests.support.steps import given_order, make_deps


def test_a_steps_read_keeps_the_connections_prepared_statements(settings, db):
    # Given a worker connection whose statements are prepared (a step ran on it)
    engine = create_sync_db_engine(settings, pool_size=1)
    deps = make_deps(engine, settings, FakePayments(), FakeMailer(), FakeCarrier())
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    with begin(deps) as session:
        lock_order(session, order_id)
    prepared = "SELECT count(*) FROM pg_prepared_statements"
    with Session(engine) as session:
        assert session.scalar(text(prepared)) > 0

    # When a step reads before calling a provider, then ends its read-only transaction
    with reading(deps) as session:
        assert read_order(session, order_id).status == S.RESERVED

    # Then the connection still holds them (psycopg's own rollback would drop them all)
    with Session(engine) as session:
        assert session.scalar(text(prepared)) > 0
    engine.dispose()


_XID = text("SELECT pg_current_xact_id()::text")
_FATE = text("SELECT pg_xact_status(CAST(:xid AS xid8))")


def _fate(engine, xid: str) -> str:
    with Session(engine) as session:
        return session.scalar(_FATE, {"xid": xid})


def test_a_step_that_only_locked_ends_with_a_rollback_and_keeps_its_statements(settings, db):
    # Given a worker connection whose statements are prepared, and an order
    engine = create_sync_db_engine(settings, pool_size=1)
    deps = make_deps(engine, settings, FakePayments(), FakeMailer(), FakeCarrier())
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    # When a duplicate message locks the order, finds it moved on, and says so
    with begin(deps) as session:
        lock_order(session, order_id)
        xid = session.scalar(_XID)
        assert unchanged(session) == SKIPPED
    # Then its transaction (which held a transaction id: it locked a row) was rolled
    # back, not committed (no WAL flush), and the connection kept its statements
    with Session(engine) as session:  # (before any psycopg rollback on this connection)
        assert session.scalar(text("SELECT count(*) FROM pg_prepared_statements")) > 0
    assert _fate(engine, xid) == "aborted"
    engine.dispose()


def test_the_unchanged_mark_never_drops_a_write_made_through_the_session(settings, db):
    engine = create_sync_db_engine(settings, pool_size=1)
    deps = make_deps(engine, settings, FakePayments(), FakeMailer(), FakeCarrier())
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    ran = []
    # Given a step that changed its locked order, and one that queued work for after
    # the commit, each then (wrongly) marking its transaction unchanged
    with begin(deps) as session:
        order = lock_order(session, order_id)
        order.refund_due = True
        changed_xid = session.scalar(_XID)
        unchanged(session)
    with begin(deps) as session:
        lock_order(session, order_id)
        after_commit(session, lambda: ran.append("after"))
        queued_xid = session.scalar(_XID)
        unchanged(session)
    # Then both committed: the change is kept and the queued work ran
    assert (_fate(engine, changed_xid), _fate(engine, queued_xid)) == ("committed", "committed")
    with reading(deps) as session:
        assert read_order(session, order_id).refund_due is True
    assert ran == ["after"]
    engine.dispose()
