"""What every step shares (``pipelines.common``): a step's read-only transaction keeps
the connection's prepared statements."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from fulfillment.db import create_sync_db_engine
from fulfillment.states import OrderStatus as S
from pipelines.common import begin, lock_order, read_order, reading
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
