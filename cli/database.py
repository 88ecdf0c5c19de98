"""``fulfillment db``: schema migrations (Alembic)."""

from __future__ import annotations

import click

from cli.context import backends
from fulfillment import migrate


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    with backends() as settings:
        migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")
