"""All configuration, read once from the environment (twelve-factor) and passed down.

Unset database and broker URLs mean the embedded default: a real PostgreSQL and a
real Redis started from pip wheels under ``VAR_DIR``. An invalid value stops start-up
with a message that names the variable.
"""

from __future__ import annotations

import os
from decimal import Decimal
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fulfillment.secret_rules import (
    DEV_JWT_SECRET,
    SANDBOX_EASYPOST_WEBHOOK_SECRET,
    SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    is_sandbox_key,
    secret_problems,
)

Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(SystemExit):
    """Start-up refused because of bad configuration; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    #: ``development`` accepts the built-in secrets; anything else must bring real ones.
    fulfillment_env: Literal["production", "development"] = "production"

    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=300)

    stripe_api_key: SecretStr = SecretStr("sk_test_sandbox")
    stripe_api_base: str | None = None
    stripe_webhook_secret: SecretStr = SecretStr(SANDBOX_STRIPE_WEBHOOK_SECRET)
    sendgrid_api_key: SecretStr = SecretStr("SG.sandbox")
    sendgrid_host: str | None = None
    easypost_api_key: SecretStr = SecretStr("EZTK_sandbox")
    easypost_api_base: str | None = None
    easypost_webhook_secret: SecretStr = SecretStr(SANDBOX_EASYPOST_WEBHOOK_SECRET)
    #: The verification key of SendGrid's signed event webhook (Mail Settings → Signed
    #: Event Webhook): base64 DER of an ECDSA P-256 public key.
    sendgrid_webhook_public_key: str = SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY

    sandbox_port: Port = 12111
    sandbox_webhook_url: str | None = None
    prometheus_multiproc_dir: Path | None = None

    api_host: str = "127.0.0.1"
    api_port: Port = 8080
    #: The API's Prometheus endpoint, on a port of its own (never the public one).
    api_metrics_port: Port = 9193
    #: Browser origins allowed to call the API (CORS), comma-separated; none by default.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Dramatiq, chosen for order fulfilment rather than left at the library defaults
    # (20 retries spanning a month, a 60 s heartbeat, maintenance on 0.1% of calls):
    # a step is retried 12 times with exponential backoff from 0.5 s capped at 2 min,
    # about 12 minutes in all, then dead-lettered so an operator sees it the same hour.
    worker_max_retries: int = Field(default=12, ge=0, le=100)
    worker_min_backoff_ms: int = Field(default=500, ge=10)
    worker_max_backoff_ms: int = Field(default=120_000, ge=10)
    #: No step may run longer than this; provider calls have budgets well below it.
    worker_time_limit_ms: int = Field(default=120_000, ge=1000)
    #: A killed worker's unacked messages come back after this silence (default 60 s).
    broker_heartbeat_timeout_ms: int = Field(default=15_000, ge=1000)
    #: Chance, per million broker calls, of the maintenance pass that requeues them.
    broker_maintenance_chance: int = Field(default=10_000, ge=1, le=1_000_000)
    #: How long dead letters are kept in Redis before Dramatiq drops them.
    dead_message_ttl_ms: int = Field(default=14 * 86_400_000, ge=60_000)
    worker_processes: int = Field(default=2, ge=1, le=64)
    worker_threads: int = Field(default=8, ge=1, le=256)
    worker_metrics_port: Port = 9191
    scheduler_metrics_port: Port = 9192

    #: Which locations an order's stock is taken from (``fulfillment.allocation``):
    #: ``fewest_packages`` (one location holding the whole order, else the fewest, by
    #: priority) or ``priority`` (each line from the locations in priority order).
    allocation_strategy: Literal["fewest_packages", "priority"] = "fewest_packages"
    #: An order left in payment_pending this long is cancelled and its stock released.
    reservation_ttl_seconds: int = Field(default=1800, ge=10)
    #: When the card is charged: ``shipment`` authorizes at order and captures when the
    #: first package ships; ``order`` captures at once.
    payment_capture: Literal["shipment", "order"] = "shipment"
    # Checkout quotes (``fulfillment.shipping_options``; amounts in major units): how long
    # one lasts; the ``carrier:service`` pairs offered (none: all); free shipping from a
    # subtotal; handling added to each option; a flat option when the carrier is away
    # (unset: 503); ``TAX_PROVIDER=none`` means prices include tax.
    quote_ttl_seconds: int = Field(default=1800, ge=60, le=7 * 86400)
    shipping_services: Annotated[tuple[str, ...], NoDecode] = ()
    shipping_free_over: Decimal | None = Field(default=None, ge=0)
    shipping_handling_amount: Decimal = Field(default=Decimal("0"), ge=0)
    shipping_fallback_amount: Decimal | None = Field(default=None, ge=0)
    tax_provider: Literal["stripe", "none"] = "stripe"
    #: An order must take a quote (``quote_id``): else it is priced without shipping or tax.
    checkout_quote_required: bool = False

    #: An authorization this close to Stripe's ``capture_before`` on an order that has
    #: not shipped sends the order to needs_attention (Stripe keeps card
    #: authorizations 7 days; 2 days leaves an operator the time to act).
    authorization_expiry_margin_seconds: int = Field(default=2 * 86400, ge=0)
    #: A customer may return a delivered order's units this many days after delivery
    #: (``POST /v1/orders/{id}/returns``).
    return_window_days: int = Field(default=30, ge=0, le=3650)
    #: A live order untouched this long is re-driven by the sweeper.
    stall_after_seconds: int = Field(default=120, ge=5)
    #: How often the scheduler sweeps the outbox even without a notification.
    outbox_sweep_seconds: float = Field(default=2.0, gt=0, le=60)

    # Outbound webhooks to the merchant (``pipelines.merchant_webhooks.deliver``).
    #: The longest one delivery (connect, send, answer) may take.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    #: A delivery not answered 2xx is retried with exponential backoff and jitter, from
    #: this delay, doubling up to the max, for this long (3 days, as Stripe does).
    webhook_retry_min_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_for_seconds: int = Field(default=3 * 86400, ge=0)
    #: An endpoint whose deliveries have all failed for this long is disabled, and the
    #: admins are told by e-mail.
    webhook_disable_after_seconds: int = Field(default=3 * 86400, ge=0)
    #: After a secret's rotation, the old secret keeps signing (beside the new) this long.
    webhook_secret_grace_seconds: int = Field(default=86400, ge=0)
    #: How often the scheduler sends the merchant deliveries that are due (new ones and
    #: retries), in batches: a new event reaches the merchant within this.
    webhook_sweep_seconds: float = Field(default=1.0, gt=0, le=60)

    var_dir: Path = Path("var")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    #: Group commit of ``POST /v1/orders``: how many transactions write orders at once,
    #: and the most orders one of them takes.
    api_order_writers: int = Field(default=2, ge=1, le=32)
    api_order_batch_max: int = Field(default=64, ge=1, le=1000)
    #: How long webhook intake waits for more events to store in the same commit. Each of
    #: the writers gathers its own batch: 100 ms rather than 50 took about 0.7 commits
    #: off an order in the bench (a provider waits seconds for its answer).
    api_webhook_gather_ms: int = Field(default=100, ge=0, le=1000)
    log_level: str = "INFO"

    # Throttling (api/shared/throttle.py), counted in Redis so every API process shares it.
    # Limits are the `limits` library's strings: "N/unit", several joined by ";".
    #: Proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated);
    #: none by default, so the client address is the connection's peer.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    #: Login attempts per client address, and per account (e-mail) from any address.
    login_address_limit: str = "60/minute"
    login_account_limit: str = "20/minute"
    #: This many failed logins for one account from one address within the window lock
    #: that pair out, first for the base period, doubling with each lockout up to the max.
    login_lockout_failures: int = Field(default=5, ge=1, le=1000)
    login_lockout_window_seconds: int = Field(default=900, ge=1)
    login_lockout_base_seconds: int = Field(default=60, ge=1)
    login_lockout_max_seconds: int = Field(default=3600, ge=1)
    #: Registrations per client address (each one sends a welcome e-mail).
    register_address_limit: str = "50/hour;100/day"
    #: Refresh, logout and password changes per client address.
    password_address_limit: str = "60/minute"
    #: Orders placed per customer.
    order_customer_limit: str = "300/minute"
    #: Address verifications (``POST /v1/addresses/verify``) per customer: each one is a
    #: call to the carrier.
    address_verify_customer_limit: str = "30/minute"
    #: Checkout quotes (``POST /v1/checkout/quotes``) per customer: each asks the carrier
    #: for rates and Stripe Tax for each price.
    quote_customer_limit: str = "30/minute"
    #: Password reset requests per client address, and per e-mail from any address.
    password_reset_address_limit: str = "20/hour"
    password_reset_account_limit: str = "5/hour"
    #: How long a password reset token works, and the storefront page the e-mail links
    #: to (``?token=…`` is appended).
    password_reset_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    password_reset_url: str = "http://127.0.0.1:3000/reset-password"
    #: Where the throttle's keys live in Redis.
    throttle_key_prefix: str = Field(default="fulfillment:throttle", min_length=1)
    #: argon2 hashes computed at once per API process (each takes ~0.1 s of a core).
    password_hash_concurrency: int = Field(default_factory=lambda: _half_the_cores(), ge=1)

    @field_validator(
        "login_address_limit",
        "login_account_limit",
        "register_address_limit",
        "password_address_limit",
        "order_customer_limit",
        "address_verify_customer_limit",
        "quote_customer_limit",
        "password_reset_address_limit",
        "password_reset_account_limit",
    )
    @classmethod
    def _check_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a limit like '10/minute' or '50/hour;100/day'"
            ) from None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _check_trusted_proxies(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        proxies = tuple(str(item) for item in value or ())
        for proxy in proxies:
            ip_network(proxy, strict=False)  # ValueError names the bad entry
        return proxies

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("must be a redis:// or amqp:// URL")
        return value

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _check_public_key(cls, value: str) -> str:
        value = "".join(value.split())
        if value and not _is_p256_public_key(value):
            raise ValueError("must be SendGrid's verification key: base64 DER of an EC P-256 key")
        return value

    @field_validator(
        "stripe_api_base",
        "sendgrid_host",
        "easypost_api_base",
        "sandbox_webhook_url",
        "password_reset_url",
    )
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("shipping_services", mode="before")
    @classmethod
    def _check_shipping_services(cls, value: object) -> tuple[str, ...]:
        services = _comma_separated(value)
        for service in services:
            carrier, _, name = service.partition(":")
            if not carrier.strip() or not name.strip():
                raise ValueError(f"{service!r} is not a service like USPS:Priority")
        return services

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _check_cors_origins(cls, value: object) -> tuple[str, ...]:
        origins = _comma_separated(value)
        for origin in origins:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ValueError(f"{origin!r} is not an origin like https://shop.example.com")
        return origins

    @model_validator(mode="after")
    def _sandbox_by_default(self) -> Settings:
        """A provider with neither a base URL nor a real key is the local sandbox: the
        embedded default, like the database and Redis."""
        sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        if self.stripe_api_base is None and is_sandbox_key(self.stripe_api_key):
            self.stripe_api_base = sandbox
        if self.sendgrid_host is None and is_sandbox_key(self.sendgrid_api_key):
            self.sendgrid_host = f"{sandbox}/sendgrid"
        if self.easypost_api_base is None and is_sandbox_key(self.easypost_api_key):
            self.easypost_api_base = f"{sandbox}/easypost/v2"
        if self.sandbox_webhook_url is None:
            self.sandbox_webhook_url = f"http://{self.api_host}:{self.api_port}"
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in SQLAlchemy's form, always on the psycopg 3 driver."""
        if self.database_url is None:
            raise RuntimeError("no database configured; start the embedded one first")
        return to_sqlalchemy_url(self.database_url)

    @property
    def libpq_url(self) -> str:
        """The database URL as libpq and psycopg take it (no SQLAlchemy driver tag)."""
        return self.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)

    @property
    def is_development(self) -> bool:
        return self.fulfillment_env == "development"


def _is_p256_public_key(value: str) -> bool:
    from base64 import b64decode  # only when a key is configured

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(b64decode(value, validate=True))
    except Exception:  # not base64, not DER, an algorithm cryptography does not know
        return False
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


def _comma_separated(value: object) -> tuple[str, ...]:
    """An environment variable's ``a, b`` as ``("a", "b")`` (a list passes as it is)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return tuple(value or ())


def _half_the_cores() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def to_sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url}")


def load_settings(**overrides: object) -> Settings:
    """Read the environment; on a bad value, or a secret that is missing or public
    outside development (see ``secret_problems``), raise ``ConfigError`` naming the
    variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    if problems := secret_problems(settings):
        hint = "" if settings.is_development else " (or FULFILLMENT_ENV=development on a laptop)"
        raise ConfigError("refusing to start: " + "; ".join(problems) + hint)
    return settings
