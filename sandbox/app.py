"""The sandbox application: Stripe at ``/``, SendGrid under ``/sendgrid``, EasyPost under
``/easypost``, the control API under ``/_sandbox``; one port, one event loop.

``create_sandbox_app`` is used the same way by ``fulfillment sandbox`` and by tests;
``serve`` runs it in the foreground, ``start_sandbox`` inside a running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from sandbox.config import SandboxConfig
from sandbox.control import setup_control_routes
from sandbox.easypost.routes import setup_easypost_routes
from sandbox.faults import error_body
from sandbox.sendgrid.routes import setup_sendgrid_routes
from sandbox.stripe.routes import setup_stripe_routes
from sandbox.world import SANDBOX, Sandbox

log = logging.getLogger(__name__)

#: Set when the app shuts down: requests hung by a timeout fault are let go.
CLOSING = web.AppKey("closing", asyncio.Event)
#: Seconds a stopping server waits for requests still being answered.
SHUTDOWN_TIMEOUT = 1.0
#: The longest the tracker clock sleeps, and the shortest (so it never spins).
TICK_CEILING = 1.0
TICK_FLOOR = 0.001


def provider_of(path: str) -> str | None:
    if path.startswith("/_sandbox"):
        return None
    if path.startswith("/sendgrid"):
        return "sendgrid"
    if path.startswith("/easypost"):
        return "easypost"
    return "stripe"


@web.middleware
async def faults_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Journal every provider request and apply the provider's faults to it."""
    provider = provider_of(request.path)
    if provider is None:
        return await handler(request)
    sandbox = request.app[SANDBOX]
    decision = sandbox.faults.decide(provider, method=request.method, path=request.path)
    entry: dict[str, Any] = {
        "provider": provider,
        "method": request.method,
        "path": request.path,
        "idempotency_key": request.headers.get("Idempotency-Key"),
        "at": time.time(),
        "fault": None,
        "status": None,
    }
    sandbox.journal.append(entry)
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.status is not None:
        entry.update(
            fault="rate_limit" if decision.status == 429 else "error", status=decision.status
        )
        headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after else {}
        body = error_body(provider, decision.status)
        return web.json_response(body, status=decision.status, headers=headers)
    response = await handler(request)
    entry["status"] = response.status
    if "X-Message-Id" in response.headers:  # SendGrid's id of the mail just taken
        entry["message_id"] = response.headers["X-Message-Id"]
    if decision.hang:
        entry["fault"] = "timeout"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(request.app[CLOSING].wait(), decision.hang)
    return response


@web.middleware
async def store_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """What a request changed is written once it is answered (or has failed)."""
    try:
        return await handler(request)
    finally:
        request.app[SANDBOX].store.flush()


def create_sandbox_app(config: SandboxConfig | None = None) -> web.Application:
    config = config or SandboxConfig()
    app = web.Application(middlewares=[store_middleware, faults_middleware])
    app[SANDBOX] = Sandbox.build(config)
    app[CLOSING] = asyncio.Event()
    setup_control_routes(app)
    setup_sendgrid_routes(app)
    setup_easypost_routes(app)
    setup_stripe_routes(app)
    app.on_shutdown.append(_release_hung_requests)
    app.cleanup_ctx.append(_background)
    return app


async def _release_hung_requests(app: web.Application) -> None:
    app[CLOSING].set()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The webhook client session and the tracker clock live as long as the app."""
    sandbox = app[SANDBOX]
    await sandbox.webhooks.start()
    ticker = asyncio.create_task(_tick_trackers(sandbox))
    yield
    ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticker
    await sandbox.webhooks.close()
    sandbox.store.close()


async def _tick_trackers(sandbox: Sandbox) -> None:
    """The tracker clock runs on its own, as EasyPost pushes tracker events whether or not
    anyone asks: it wakes when the next tracker is due to move (and at least every
    ``TICK_CEILING``, when Stripe's authorizations past ``capture_before`` lapse and its
    refunds under way settle too)."""
    while True:
        await asyncio.sleep(_until_next_move(sandbox))
        try:
            sandbox.stripe.catch_up()
            sandbox.easypost.tick()
            sandbox.store.flush()
        except Exception:
            log.exception("tracker clock tick failed")


def _until_next_move(sandbox: Sandbox) -> float:
    """Seconds until the next tracker move, never more than a step: a tracker bought
    while the clock sleeps is due a step after its purchase, not sooner."""
    step = sandbox.config.tracker_step_seconds
    if step <= 0:
        return TICK_CEILING
    ceiling = min(TICK_CEILING, step)
    next_move = sandbox.easypost.next_move_at()
    if next_move is None:
        return ceiling
    return min(ceiling, max(TICK_FLOOR, next_move - sandbox.clock.now()))


async def start_sandbox(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start inside the running loop; ``port=0`` takes a free one. Returns the runner
    (``await runner.cleanup()`` stops it) and the base URL."""
    return await start_app(create_sandbox_app(config), host=host, port=port)


async def start_app(
    app: web.Application, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, f"http://{host}:{runner.addresses[0][1]}"


def serve(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 12111,
    print_fn: Callable[..., None] | None = print,
) -> None:
    """Run in the foreground until interrupted (``fulfillment sandbox``)."""
    web.run_app(
        create_sandbox_app(config),
        host=host,
        port=port,
        print=print_fn,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=None,
    )
