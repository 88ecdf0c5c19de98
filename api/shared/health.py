"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from api.shared.context import ENGINE, REDIS
from api.shared.jsonio import respond
from api.shared.schemas import Health, Readiness

#: How long one readiness probe may wait on a dependency.
PROBE_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    return respond(Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    checks = {
        "database": await _probe(_database_ok(request)),
        "redis": await _probe(request.app[REDIS].ping()),
    }
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "unavailable", checks=checks)
    return respond(body, status=200 if ready else 503)


async def _database_ok(request: web.Request) -> bool:
    async with request.app[ENGINE].connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def _probe(check) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await check
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def metrics_endpoint(request: web.Request) -> web.Response:
    """The API's own metrics, from its memory (``monitoring.metrics``): never a
    multiprocess folder, which is the workers' and emptied when they start."""
    payload = generate_latest(REGISTRY)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})
