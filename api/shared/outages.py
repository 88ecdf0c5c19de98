"""A dependency outage is a ``503`` with ``Retry-After``, never a ``500`` or a hang.

PostgreSQL or Redis unreachable (refused, reset, timed out, a pool that cannot hand out
a connection in time) is something the client should retry shortly, not a bug: the
middleware turns those errors into ``503 service_unavailable`` in the usual error
shape. Nothing needs restarting afterwards: SQLAlchemy's pool replaces the connections
that died, and the next request that finds the server back gets a fresh one.
"""

from __future__ import annotations

import psycopg
import redis.exceptions
import sqlalchemy.exc
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from api.shared.errors import ApiError, ErrorCode

log = structlog.get_logger("api.outages")

#: Seconds a client is asked to wait before retrying during an outage.
RETRY_AFTER_SECONDS = 5

#: What an unreachable dependency raises. psycopg's OperationalError also covers a
#: statement or lock timeout, a deadlock and a serialization failure: all worth a retry.
OUTAGES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within the pool's timeout
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def service_unavailable(dependency: str) -> ApiError:
    return ApiError(
        503, ErrorCode.SERVICE_UNAVAILABLE,
        f"the {dependency} is unreachable for the moment; retry in a few seconds",
        {"dependency": dependency}, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )  # fmt: skip


def dependency_of(exc: BaseException) -> str | None:
    """ "database" or "broker" when ``exc`` says it is unreachable, else None."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return "database"
    if not isinstance(exc, OUTAGES):
        return None
    return "broker" if isinstance(exc, redis.exceptions.RedisError) else "database"


@web.middleware
async def outage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        dependency = dependency_of(exc)
        if dependency is None:
            raise
        log.warning("dependency_unavailable", dependency=dependency,
                    error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip
        raise service_unavailable(dependency) from exc
