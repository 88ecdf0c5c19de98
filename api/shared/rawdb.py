"""The psycopg connection under SQLAlchemy's pool, for the API's hot paths (order
placement, webhook intake): one prepared statement instead of an ORM session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncEngine


@asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection; a transaction the block leaves open is rolled back, and a
    connection that broke (the server went away) is dropped from the pool, not reused."""
    async with engine.connect() as sa_conn:
        conn: AsyncConnection = (await sa_conn.get_raw_connection()).driver_connection
        try:
            yield conn
        finally:
            if conn.broken or conn.closed:
                await sa_conn.invalidate()
            elif conn.info.transaction_status != 0:
                await conn.rollback()
