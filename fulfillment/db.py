"""Engines and sessions. Built by the caller (app factory, worker boot, CLI), never at
import time. The API uses the async engine; workers and the CLI the sync one; both run
on psycopg 3 with the same models. JSON they store (a JSONB column, a ``Jsonb`` parameter
on one of their connections) is written by ``fulfillment.jsonout``."""

from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from fulfillment import jsonout
from fulfillment.settings import Settings

#: Server-side guards on every connection: no statement or lock wait may hang a request.
CONNECT_OPTIONS = (
    "-c statement_timeout=15000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=60000"
)
#: Client-side bounds while the server is away: seconds to open a connection (libpq
#: counts 2 at least) and to wait for a pooled one. A request then fails in seconds
#: (the API answers 503) instead of hanging on a server that does not answer.
CONNECT_TIMEOUT_SECONDS = 3
POOL_TIMEOUT_SECONDS = 5
CONNECT_ARGS = {"options": CONNECT_OPTIONS, "connect_timeout": CONNECT_TIMEOUT_SECONDS}


#: A pooled connection unused this long is pinged before it is handed out (it may have
#: died with a database restart). A busy one is not: SQLAlchemy's ``pool_pre_ping``
#: pings on every checkout, a round trip and, as psycopg pings in autocommit, a
#: transaction of its own on every request (4.5 commits per order, measured).
PING_AFTER_IDLE_SECONDS = 5.0


def create_async_db_engine(settings: Settings) -> AsyncEngine:
    """The API's engine. Its pool hands out the connection given back last (LIFO): the
    group-commit writers' few busy connections keep their server processes' prepared
    plans warm, where the default queue passed every statement through all twenty of
    them in turn, each planning it afresh (a tracker event's statement, 2 to 3 ms a
    plan, was planned five times as often: 0.15 plans an order against 0.03)."""
    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_use_lifo=True,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args=CONNECT_ARGS,
        json_serializer=jsonout.dumps,
    )
    ping_when_idle(engine.sync_engine.pool, engine.dialect, idle_seconds=PING_AFTER_IDLE_SECONDS)
    return engine


def ping_when_idle(pool, dialect: Dialect, *, idle_seconds: float) -> None:
    """SQLAlchemy's pessimistic disconnect handling (a checkout listener that raises
    ``DisconnectionError``, after which the pool replaces the connection), for
    connections idle ``idle_seconds`` or more only."""

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        since = record.info.get("checked_in")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


def create_sync_db_engine(
    settings: Settings, *, pool_size: int = 5, max_overflow: int | None = None
) -> Engine:
    """No pre-ping here: a step that finds its connection dead fails and is retried by
    Dramatiq, and SQLAlchemy drops the dead pool; a ping per checkout would cost every
    step a round trip. ``max_overflow``: connections opened past ``pool_size`` at a
    peak, each closed when it is given back (``pool_size`` more unless told)."""
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        connect_args=CONNECT_ARGS,
        json_serializer=jsonout.dumps,
    )


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
