"""Throttling of the routes an attacker leans on, counted in Redis with the ``limits``
library (fixed windows: one round trip per limit), so every API process shares the
counts:

- login: attempts per client address and per account (e-mail, from any address); and
  progressive lockout of an account + address pair after repeated failures;
- registration, refresh, logout and password changes: per client address;
- password reset requests: per client address and per e-mail (from any address),
  counted alike whether or not an account has that e-mail; their confirmations per
  client address;
- address verifications and checkout quotes: per customer (each costs provider calls);
- order placement: per customer, in a window local to each API process (no round trip:
  measured with wrk, a Redis round trip per order cost about a quarter of the route's
  throughput); with N API processes a customer may place up to N times the limit.

A refused request is ``429`` in the usual error shape, with ``Retry-After``, and counted
in ``fulfillment_auth_throttled_total``. When Redis cannot answer, requests go through
unthrottled (logged): the database, not the throttle, is what must not fail.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from limits import RateLimitItem, RateLimitItemPerSecond, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.shared.client_address import client_address, parse_networks
from api.shared.context import REDIS, SETTINGS, TOKENS
from api.shared.errors import ApiError, ErrorCode
from api.shared.jsonio import UnfitJson, loads, unstorable_fields
from api.shared.middlewares import route_label
from api.shared.tokens import InvalidToken
from fulfillment.settings import Settings
from monitoring import metrics

log = structlog.get_logger("api.throttle")

T = TypeVar("T")

#: Why a request was refused: the ``reason`` label of ``fulfillment_auth_throttled_total``.
REASONS = ("address", "account", "customer", "lockout")
#: How long a pair's lockout count is remembered: its next lockout doubles within this.
LOCKOUT_MEMORY_SECONDS = 86_400
#: The error code of a wrong e-mail or password (api/users/auth.py), and of a wrong current
#: password on a password change (api/users/views.py): failures that count towards lockout.
FAILURE_CODES = frozenset({ErrorCode.INVALID_CREDENTIALS, ErrorCode.CURRENT_PASSWORD_INVALID})


def throttled(route: str, reason: str, retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    metrics.auth_throttled_total.labels(route, reason).inc()
    return ApiError(
        429,
        ErrorCode.TOO_MANY_REQUESTS,
        f"too many requests; try again in {seconds} s",
        {"reason": reason, "retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )


def _digest(value: str) -> str:
    """Keys name accounts by a hash: no e-mail address is written to Redis."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Limits:
    login_address: list[RateLimitItem]
    login_account: list[RateLimitItem]
    register_address: list[RateLimitItem]
    password_address: list[RateLimitItem]
    order_customer: list[RateLimitItem]
    address_customer: list[RateLimitItem]
    quote_customer: list[RateLimitItem]
    failures: RateLimitItem
    lockout_base: int
    lockout_max: int
    reset_address: list[RateLimitItem]
    reset_account: list[RateLimitItem]

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            login_address=parse_many(settings.login_address_limit),
            login_account=parse_many(settings.login_account_limit),
            register_address=parse_many(settings.register_address_limit),
            password_address=parse_many(settings.password_address_limit),
            order_customer=parse_many(settings.order_customer_limit),
            address_customer=parse_many(settings.address_verify_customer_limit),
            quote_customer=parse_many(settings.quote_customer_limit),
            # the N-th failure is the first one past the N - 1 a pair may make freely
            failures=RateLimitItemPerSecond(
                settings.login_lockout_failures - 1, settings.login_lockout_window_seconds
            ),
            lockout_base=settings.login_lockout_base_seconds,
            lockout_max=settings.login_lockout_max_seconds,
            reset_address=parse_many(settings.password_reset_address_limit),
            reset_account=parse_many(settings.password_reset_account_limit),
        )


class LocalWindow:
    """Fixed windows counted in this process: a dict lookup per request. Windows are
    aligned to the clock (``time // period``); a new one starts the counts afresh.

    Not ``limits``' own memory storage: it expires its counters from a timer thread
    started anew every 10 ms while requests come in (about a hundred threads a second
    under load), which cost about a tenth of ``POST /v1/orders`` throughput (wrk, one
    API process, side by side: 1,463-1,539 requests/s against 1,652-1,664 with this)."""

    def __init__(self, items: list[RateLimitItem]) -> None:
        self._items = [(item.amount, item.get_expiry()) for item in items]
        self._windows: list[tuple[int, dict[str, int]]] = [(-1, {}) for _ in items]

    def hit(self, subject: str, now: float) -> float | None:
        """Count one request; None if it fits, else seconds until its window ends."""
        for index, (amount, period) in enumerate(self._items):
            window = int(now // period)
            current, counts = self._windows[index]
            if current != window:
                counts = {}
                self._windows[index] = (window, counts)
            used = counts.get(subject, 0) + 1
            counts[subject] = used
            if used > amount:
                return (window + 1) * period - now
        return None


class Throttle:
    def __init__(self, *, storage: RedisStorage, redis: Redis, settings: Settings) -> None:
        self._limiter = FixedWindowRateLimiter(storage)
        self._redis = redis
        self._prefix = settings.throttle_key_prefix
        self.limits = Limits.from_settings(settings)
        self.proxies = parse_networks(settings.trusted_proxies)
        self.orders = LocalWindow(self.limits.order_customer)

    async def limit(self, items: list[RateLimitItem], *ids: str, route: str, reason: str):
        """Count one request against each of ``items``; 429 if one is used up."""
        for item in items:
            allowed = await self._guarded(self._limiter.hit(item, reason, *ids), default=True)
            if not allowed:
                stats = await self._guarded(
                    self._limiter.get_window_stats(item, reason, *ids), default=None
                )
                wait = stats.reset_time - time.time() if stats else item.get_expiry()
                raise throttled(route, reason, wait)

    async def check_lock(self, subject: str, *, route: str) -> None:
        ttl = await self._guarded(self._redis.pttl(self._key("lock", subject)), default=-2)
        if ttl > 0:
            raise throttled(route, "lockout", ttl / 1000)

    async def failed(self, subject: str) -> None:
        """One more failure for ``subject``; past the limit, lock it out for the base
        period, doubled for each earlier lockout remembered, up to the maximum."""
        within = await self._guarded(
            self._limiter.hit(self.limits.failures, "failures", subject), default=True
        )
        if not within:
            await self._guarded(self._lock_out(subject), default=None)

    async def succeeded(self, subject: str) -> None:
        await self._guarded(
            self._limiter.clear(self.limits.failures, "failures", subject), default=None
        )

    async def _lock_out(self, subject: str) -> None:
        count_key = self._key("lockouts", subject)
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _ = (
                await pipe.incr(count_key).expire(count_key, LOCKOUT_MEMORY_SECONDS).execute()
            )
        seconds = min(self.limits.lockout_max, self.limits.lockout_base * 2 ** (count - 1))
        await self._redis.set(self._key("lock", subject), "1", ex=seconds)
        await self._limiter.clear(self.limits.failures, "failures", subject)
        log.warning("login_locked_out", seconds=seconds, lockouts=count)

    def _key(self, kind: str, subject: str) -> str:
        return f"{self._prefix}:{kind}:{subject}"

    @staticmethod
    async def _guarded(call: Awaitable[T], *, default: T) -> T:
        try:
            return await call
        except (StorageError, RedisError, OSError, TimeoutError) as exc:
            log.warning("throttle_unavailable", error=f"{type(exc).__name__}: {exc}")
            return default


THROTTLE = web.AppKey("throttle", Throttle)

Policy = Callable[[Throttle, web.Request, Handler, str], Awaitable[web.StreamResponse]]


async def _email(request: web.Request) -> str | None:
    """The e-mail a login names, if the body has one (the handler validates the rest)."""
    try:  # the parser the handler uses: too deep or malformed is the handler's 400
        body = loads(await request.read())
    except UnfitJson:
        return None
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip() or unstorable_fields(email):
        return None  # nothing to count under; the handler refuses it
    return email.strip().lower()


async def _login(throttle: Throttle, request: web.Request, handler: Handler, route: str):
    address = client_address(request, throttle.proxies)
    email = await _email(request)
    subject = _digest(f"{email}|{address}") if email else None
    if subject is not None:
        await throttle.check_lock(subject, route=route)
    await throttle.limit(throttle.limits.login_address, address, route=route, reason="address")
    if email is not None:
        account = _digest(email)
        await throttle.limit(throttle.limits.login_account, account, route=route, reason="account")
    return await _counting_failures(throttle, request, handler, subject)


def _account_of_token(request: web.Request) -> str | None:
    """The account a valid bearer token names (verified tokens are cached, so this is no
    round trip), None without one: the route's access guard answers that with 401, and
    the throttle runs before the guard, so it must not count such requests."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return str(request.app[TOKENS].verify_access(token.strip()).user_id)
    except InvalidToken:
        return None


async def _password_change(throttle: Throttle, request: web.Request, handler: Handler, route):
    """A new password needs the current one: guesses at it count like failed logins."""
    address = client_address(request, throttle.proxies)
    await throttle.limit(throttle.limits.password_address, address, route=route, reason="address")
    account = _account_of_token(request)
    subject = _digest(f"user:{account}|{address}") if account else None
    if subject is not None:
        await throttle.check_lock(subject, route=route)
    return await _counting_failures(throttle, request, handler, subject)


async def _counting_failures(
    throttle: Throttle, request: web.Request, handler: Handler, subject: str | None
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiError as exc:
        if subject is not None and exc.code in FAILURE_CODES:
            await throttle.failed(subject)
        raise
    if subject is not None and response.status < 300:
        await throttle.succeeded(subject)
    return response


def _per_address(pick: Callable[[Limits], list[RateLimitItem]]) -> Policy:
    async def policy(throttle: Throttle, request: web.Request, handler: Handler, route: str):
        address = client_address(request, throttle.proxies)
        await throttle.limit(pick(throttle.limits), address, route=route, reason="address")
        return await handler(request)

    return policy


async def _password_reset(throttle: Throttle, request: web.Request, handler: Handler, route):
    """Per address and per e-mail: an address cannot flood one mailbox, nor learn from a
    refusal whether an account exists (an e-mail without one is counted the same)."""
    address = client_address(request, throttle.proxies)
    await throttle.limit(throttle.limits.reset_address, address, route=route, reason="address")
    email = await _email(request)
    if email is not None:
        account = _digest(email)
        await throttle.limit(throttle.limits.reset_account, account, route=route, reason="account")
    return await handler(request)


async def _order(throttle: Throttle, request: web.Request, handler: Handler, route: str):
    customer = _account_of_token(request)
    if customer is not None:
        wait = throttle.orders.hit(customer, time.time())
        if wait is not None:
            raise throttled(route, "customer", wait)
    return await handler(request)


def _per_customer(pick: Callable[[Limits], list[RateLimitItem]]) -> Policy:
    """Calls per customer, counted in Redis: each costs calls to the providers (an address
    verification, a quote's rates and tax)."""

    async def policy(throttle: Throttle, request: web.Request, handler: Handler, route: str):
        customer = _account_of_token(request)
        if customer is not None:
            await throttle.limit(pick(throttle.limits), customer, route=route, reason="customer")
        return await handler(request)

    return policy


#: (method, route template): how that route is throttled. Routes not named are not.
POLICIES: dict[tuple[str, str], Policy] = {
    ("POST", "/v1/auth/login"): _login,
    ("POST", "/v1/users"): _per_address(lambda limits: limits.register_address),
    ("POST", "/v1/auth/refresh"): _per_address(lambda limits: limits.password_address),
    ("POST", "/v1/auth/logout"): _per_address(lambda limits: limits.password_address),
    ("PATCH", "/v1/users/me"): _password_change,
    ("POST", "/v1/auth/password-reset"): _password_reset,
    ("POST", "/v1/auth/password-reset/confirm"): _per_address(
        lambda limits: limits.password_address
    ),
    ("POST", "/v1/orders"): _order,
    ("POST", "/v1/addresses/verify"): _per_customer(lambda limits: limits.address_customer),
    ("POST", "/v1/checkout/quotes"): _per_customer(lambda limits: limits.quote_customer),
}

#: Every (route, reason) a refusal is counted under.
SERIES = (
    *(("/v1/auth/login", reason) for reason in ("address", "account", "lockout")),
    ("/v1/users", "address"),
    ("/v1/auth/refresh", "address"),
    ("/v1/auth/logout", "address"),
    ("/v1/users/me", "address"),
    ("/v1/users/me", "lockout"),
    ("/v1/auth/password-reset", "address"),
    ("/v1/auth/password-reset", "account"),
    ("/v1/auth/password-reset/confirm", "address"),
    ("/v1/orders", "customer"),
    ("/v1/addresses/verify", "customer"),
    ("/v1/checkout/quotes", "customer"),
)


@web.middleware
async def throttle_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Innermost, so that its 429s and the handler's errors pass the error middleware."""
    route = route_label(request)
    policy = POLICIES.get((request.method, route))
    if policy is None:
        return await handler(request)
    return await policy(request.app[THROTTLE], request, handler, route)


async def throttle_ctx(app: web.Application) -> AsyncIterator[None]:
    """The throttle shares the API's Redis connection pool (after ``_redis``)."""
    settings = app[SETTINGS]
    storage = RedisStorage(
        "async+" + _limits_uri(settings.redis_url or ""),
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=settings.throttle_key_prefix,
        connection_pool=app[REDIS].connection_pool,
    )
    app[THROTTLE] = Throttle(storage=storage, redis=app[REDIS], settings=settings)
    metrics.initialise_throttle_series(SERIES)
    yield


def _limits_uri(redis_url: str) -> str:
    """``limits`` spells a Unix socket ``redis+unix://``; the pool is ours either way."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


def setup_throttle(app: web.Application) -> None:
    app.cleanup_ctx.append(throttle_ctx)
    app.middlewares.append(throttle_middleware)
