"""Engines and sessions. Built by the caller (app factory, worker boot, CLI), never at
import time. The API uses the async engine; workers and the CLI the sync one; both run
on psycopg 3 with the same models."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from fulfillment.settings import Settings

#: Server-side guards on every connection: no statement or lock wait may hang a request.
CONNECT_OPTIONS = (
    "-c statement_timeout=15000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=60000"
)


def create_async_db_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={"options": CONNECT_OPTIONS},
    )


def create_sync_db_engine(settings: Settings, *, pool_size: int = 5) -> Engine:
    """No pre-ping here: a step that finds its connection dead fails and is retried by
    Dramatiq, and SQLAlchemy drops the dead pool; a ping per checkout would cost every
    step a round trip."""
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": CONNECT_OPTIONS},
    )


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
