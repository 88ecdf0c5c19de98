"""What every command needs first: settings, logging, and the embedded servers when no
database or Redis is configured."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from fulfillment.embedded import EmbeddedServers
from fulfillment.logs import configure_logging
from fulfillment.settings import Settings, load_settings


@contextlib.contextmanager
def backends(settings: Settings | None = None) -> Iterator[Settings]:
    """Settings whose DATABASE_URL and REDIS_URL point at running servers: the
    configured ones, or embedded ones under ``var/`` started for as long as this lasts."""
    settings = settings or load_settings()
    embedded = EmbeddedServers(settings.var_dir)
    needs = [
        name
        for name, url in (("PostgreSQL", settings.database_url), ("Redis", settings.redis_url))
        if url is None
    ]
    if needs:
        click.echo(f"starting embedded {' and '.join(needs)} under {settings.var_dir}/", err=True)
    try:
        database_url, redis_url = embedded.start(
            database_url=settings.database_url, redis_url=settings.redis_url
        )
        yield settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
    finally:
        embedded.stop()


def init_logging(settings: Settings) -> None:
    configure_logging(settings.log_level)
