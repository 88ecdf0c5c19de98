"""The API's Prometheus endpoint, on a port of its own (``API_METRICS_PORT``), like the
workers' and the scheduler's: scrapes never share the public listener, so the metrics
are not served to the internet and the API's own request metrics do not count them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api.shared.context import SETTINGS
from api.shared.headers import security_headers
from api.shared.health import metrics_endpoint


def create_metrics_app() -> web.Application:
    """``GET /metrics`` and nothing else."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_endpoint)
    app.on_response_prepare.append(security_headers)
    return app


async def metrics_site(app: web.Application) -> AsyncIterator[None]:
    """A ``cleanup_ctx`` for the API process: the metrics listener lives and dies with
    the API (``fulfillment api`` adds it; in-process tests do not bind the port)."""
    settings = app[SETTINGS]
    runner = web.AppRunner(create_metrics_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_metrics_port).start()
    yield
    await runner.cleanup()
