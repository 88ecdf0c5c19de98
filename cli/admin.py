"""Operator tasks: ``fulfillment users`` and ``fulfillment catalog``."""

from __future__ import annotations

import click

from cli.context import backends
from fulfillment.accounts import upsert_admin
from fulfillment.catalog import seed_catalog
from fulfillment.db import create_sync_db_engine, sync_session_factory

#: Shortest password an operator account accepts.
MIN_ADMIN_PASSWORD = 10


@click.group()
def users() -> None:
    """Accounts."""


@users.command("create-admin")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, password: str) -> None:
    """Create an operator account (or make EMAIL an admin with this password)."""
    if len(password) < MIN_ADMIN_PASSWORD or "@" not in email:
        raise click.BadParameter(
            f"give an e-mail and a password of at least {MIN_ADMIN_PASSWORD} characters"
        )
    with backends() as settings:
        engine = create_sync_db_engine(settings, pool_size=1)
        with sync_session_factory(engine).begin() as session:
            created = upsert_admin(session, email=email, password=password)
        engine.dispose()
    click.echo(f"admin {email} {'created' if created else 'updated'}")


@click.group()
def catalog() -> None:
    """The product catalogue."""


@catalog.command()
def seed() -> None:
    """Load the sample catalogue when the catalogue is empty."""
    with backends() as settings:
        engine = create_sync_db_engine(settings, pool_size=1)
        with sync_session_factory(engine).begin() as session:
            added = seed_catalog(session)
        engine.dispose()
    click.echo(f"added {added} products" if added else "catalogue not empty; nothing added")
