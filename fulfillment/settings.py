"""All configuration, read once from the environment (twelve-factor) and passed down.

Unset database and broker URLs mean the embedded default: a real PostgreSQL and a
real Redis started from pip wheels under ``VAR_DIR``. An invalid value stops start-up
with a message that names the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The JWT secret used when none is configured. Fine on a laptop, refused nowhere,
#: but ``fulfillment run`` warns about it and production must set ``JWT_SECRET``.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789"

Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(SystemExit):
    """Start-up refused because of bad configuration; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=300)

    stripe_api_key: SecretStr = SecretStr("sk_test_sandbox")
    stripe_api_base: str | None = None
    stripe_webhook_secret: SecretStr = SecretStr("whsec_sandbox")
    sendgrid_api_key: SecretStr = SecretStr("SG.sandbox")
    sendgrid_host: str | None = None
    easypost_api_key: SecretStr = SecretStr("EZTK_sandbox")
    easypost_api_base: str | None = None
    easypost_webhook_secret: SecretStr = SecretStr("easypost-sandbox-secret")

    sandbox_port: Port = 12111
    sandbox_webhook_url: str | None = None
    prometheus_multiproc_dir: Path | None = None

    api_host: str = "127.0.0.1"
    api_port: Port = 8080

    var_dir: Path = Path("var")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    log_level: str = "INFO"

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

    @field_validator("stripe_api_base", "sendgrid_host", "easypost_api_base", "sandbox_webhook_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in SQLAlchemy's form, always on the psycopg 3 driver."""
        if self.database_url is None:
            raise RuntimeError("no database configured; start the embedded one first")
        return to_sqlalchemy_url(self.database_url)

    @property
    def uses_dev_jwt_secret(self) -> bool:
        return self.jwt_secret.get_secret_value() == DEV_JWT_SECRET


def to_sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url}")


def load_settings(**overrides: object) -> Settings:
    """Read the environment; on a bad value raise ``ConfigError`` naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
