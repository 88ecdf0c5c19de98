"""The steps' statements run on one cursor per pooled connection (``pipelines.sql``):
it serves every transaction on that connection, each statement's rows read before the
next, and a connection the pool replaced (its server process gone) gets a new one."""

from __future__ import annotations

import psycopg
import pytest

from fulfillment.db import create_sync_db_engine
from fulfillment.states import OrderStatus as S
from pipelines import sql
from pipelines.common import begin, lock_order, order_lines, read_order, reading
from tests.support.fakes import FakeCarrier, FakeMailer, FakePayments
from tests.support.steps import given_order, make_deps


@pytest.fixture
def deps(settings, db):
    engine = create_sync_db_engine(settings, pool_size=1)  # one pooled connection
    yield make_deps(engine, settings, FakePayments(), FakeMailer(), FakeCarrier())
    engine.dispose()


def test_one_cursor_serves_every_statement_of_the_connection(deps):
    order_id, _ = given_order(deps, deps.sessions.kw["bind"], at=S.RESERVED)

    # When two transactions on the one connection run statements with different rows
    with begin(deps) as session:
        order = lock_order(session, order_id)
        lines = order_lines(session, order.id)
        first = sql._held(session)[1]
    with reading(deps) as session:
        read = read_order(session, order_id)
        second = sql._held(session)[1]

    # Then each statement read its own rows, over the same cursor
    assert (order.status, read.status, str(read.id)) == (S.RESERVED, S.RESERVED, order_id)
    assert lines and all(quantity > 0 for _, quantity in lines)
    assert first is second and not first.closed


def test_a_connection_whose_server_process_died_gets_a_new_cursor(deps, db):
    order_id, _ = given_order(deps, deps.sessions.kw["bind"], at=S.RESERVED)
    with reading(deps) as session:
        read_order(session, order_id)
        connection, cursor = sql._held(session)
        backend = connection.info.backend_pid

    # Given the pooled connection's server process ended (a database restart, say)
    with db.connect() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")

    # When a step runs on it, it fails (Dramatiq retries it) ...
    with pytest.raises(Exception) as failed, reading(deps) as session:
        read_order(session, order_id)
    assert isinstance(failed.value.__cause__ or failed.value, psycopg.OperationalError)

    # ... and the next run gets a new connection and a new cursor, and reads
    with reading(deps) as session:
        assert str(read_order(session, order_id).id) == order_id
        renewed_connection, renewed = sql._held(session)
    assert renewed is not cursor and renewed_connection.info.backend_pid != backend
