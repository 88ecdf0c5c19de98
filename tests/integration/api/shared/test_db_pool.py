"""The API's pool pings a connection only when it has sat idle: one that died meanwhile
(a database restart) is replaced before a request sees it, and a busy one costs no
extra round trip or transaction. It hands out the connection given back last, so that
the busy few keep their server processes' plans."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fulfillment import db as db_module


async def backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT pg_backend_pid()"))


def terminate(database_url: str, pid: int) -> None:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_an_idle_connection_that_died_is_replaced_before_use(settings, database_url,
                                                                  monkeypatch):  # fmt: skip
    # Given a pooled connection, idle past the threshold, whose backend was terminated
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = db_module.create_async_db_engine(settings)
    try:
        pid = await backend_pid(engine)
        terminate(database_url, pid)

        # When the next request takes a connection
        again = await backend_pid(engine)

        # Then it got a live one
        assert again != pid
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(settings, database_url, monkeypatch):
    # Given a pool whose connections were just used (threshold far away)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = db_module.create_async_db_engine(settings)
    try:
        pid = await backend_pid(engine)
        terminate(database_url, pid)

        # When the next request takes it, nothing pinged it first: the dead connection is
        # found by the query itself (and SQLAlchemy then drops the pool)
        with pytest.raises(DBAPIError):
            await backend_pid(engine)
        assert await backend_pid(engine) != pid
    finally:
        await engine.dispose()


async def test_the_connection_given_back_last_is_handed_out_next(settings):
    # Given three connections used at once and given back one after the other
    engine = db_module.create_async_db_engine(settings)
    try:
        held = [await engine.connect() for _ in range(3)]
        pids = [await c.scalar(text("SELECT pg_backend_pid()")) for c in held]
        for connection in held:
            await connection.close()

        # When requests take connections one at a time
        taken = [await backend_pid(engine) for _ in range(3)]

        # Then each gets the one given back last (a queue would pass through all three)
        assert taken == [pids[-1]] * 3
    finally:
        await engine.dispose()
