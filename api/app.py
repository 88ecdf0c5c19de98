"""The aiohttp application factory, used the same way by production and the tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from redis.asyncio import Redis

from api.checkout.quotes import tax_ctx
from api.desk.dead_letters import dead_letters_ctx
from api.intake.providers import WebhookWriter
from api.orders.addresses import carrier_ctx
from api.orders.placement import OrderWriter
from api.routes import ROUTES, setup_routes
from api.shared.accounts import AccountStates, listen
from api.shared.context import (
    ACCOUNT_STATES,
    ENGINE,
    OPENAPI,
    ORDER_WRITER,
    PASSWORDS,
    REDIS,
    SESSIONS,
    SETTINGS,
    TOKENS,
    WEBHOOK_WRITER,
)
from api.shared.cors import setup_cors
from api.shared.headers import setup_headers
from api.shared.middlewares import setup_middlewares
from api.shared.openapi import build_openapi
from api.shared.throttle import setup_throttle
from api.shared.tokens import TokenService
from fulfillment.db import async_session_factory, create_async_db_engine
from fulfillment.passwords import PasswordWork
from fulfillment.settings import Settings
from monitoring import metrics

#: Largest request body accepted; larger ones are answered 413.
MAX_BODY_BYTES = 1024 * 1024


def _version() -> str:
    try:
        return version("fulfillment")
    except PackageNotFoundError:
        return "0.0.0"


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_async_db_engine(app[SETTINGS])
    app[ENGINE] = engine
    app[SESSIONS] = async_session_factory(engine)
    yield
    await engine.dispose()


async def _order_writer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    writer = OrderWriter(app[ENGINE], writers=settings.api_order_writers,
                         max_batch=settings.api_order_batch_max,
                         quote_required=settings.checkout_quote_required)  # fmt: skip
    app[ORDER_WRITER] = writer
    yield
    await writer.close()


async def _webhook_writer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    writer = WebhookWriter(app[ENGINE], writers=settings.api_order_writers,
                           max_batch=settings.api_order_batch_max,
                           gather=settings.api_webhook_gather_ms / 1000)  # fmt: skip
    app[WEBHOOK_WRITER] = writer
    yield
    await writer.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = Redis.from_url(app[SETTINGS].redis_url, socket_timeout=5, socket_connect_timeout=2)
    app[REDIS] = client
    yield
    await client.aclose()


async def _account_states(app: web.Application) -> AsyncIterator[None]:
    """The accounts' states and their listener (``api.shared.accounts``), for the
    application's lifetime."""
    states = AccountStates()
    app[ACCOUNT_STATES] = states
    task = asyncio.create_task(listen(states, app[SETTINGS].libpq_url))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    """``settings`` must name a database and Redis (the embedded ones are started by the
    command line before this is called)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[TOKENS] = TokenService(
        secret=settings.jwt_secret.get_secret_value(),
        access_ttl_seconds=settings.access_token_ttl_seconds,
    )
    app[OPENAPI] = build_openapi(ROUTES, version=_version())
    app[PASSWORDS] = PasswordWork(concurrency=settings.password_hash_concurrency)
    metrics.initialise_email_event_series()
    app.cleanup_ctx.extend([_database, _order_writer, _webhook_writer, _redis, dead_letters_ctx,
                            _account_states])  # fmt: skip
    app.cleanup_ctx.append(carrier_ctx)  # address verification (api.orders.addresses)
    app.cleanup_ctx.append(tax_ctx)  # checkout quotes (api.checkout.quotes)
    setup_middlewares(app)
    setup_throttle(app)  # after the Redis client, and the innermost middleware
    setup_headers(app)
    setup_routes(app)
    setup_cors(app, settings.cors_origins)
    return app
