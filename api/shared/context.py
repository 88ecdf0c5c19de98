"""Typed application keys: what ``create_app`` builds and handlers use."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from api.shared.accounts import AccountStates
from api.shared.tokens import TokenService
from fulfillment.passwords import PasswordWork
from fulfillment.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker)
REDIS = web.AppKey("redis", Redis)
TOKENS = web.AppKey("tokens", TokenService)
OPENAPI = web.AppKey("openapi", dict)
DEAD_LETTERS = web.AppKey("dead_letters", object)
ORDER_WRITER = web.AppKey("order_writer", object)
WEBHOOK_WRITER = web.AppKey("webhook_writer", object)
PASSWORDS = web.AppKey("passwords", PasswordWork)
ACCOUNT_STATES = web.AppKey("account_states", AccountStates)
