"""``fulfillment api`` (the HTTP server) and ``fulfillment run`` (everything at once)."""

from __future__ import annotations

import json
import os
import secrets
import sys

import click
from aiohttp import web

from cli.context import backends, init_logging
from cli.supervisor import Child, Supervisor, fulfillment_command
from fulfillment import migrate
from fulfillment.accounts import upsert_admin
from fulfillment.catalog import seed_catalog
from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.heap import freeze_startup_heap
from fulfillment.settings import Settings, load_settings

#: The operator account ``fulfillment run`` creates for local use.
LOCAL_ADMIN_EMAIL = "admin@example.com"


@click.command()
@click.option("--host", default=None, help="default: API_HOST (127.0.0.1)")
@click.option("--port", type=int, default=None, help="default: API_PORT (8080)")
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API."""
    from api.app import create_app
    from api.shared.metrics_server import metrics_site

    with backends() as settings:
        init_logging(settings)
        app = create_app(settings)
        app.cleanup_ctx.append(metrics_site)  # metrics on API_METRICS_PORT
        freeze_startup_heap()
        web.run_app(
            app,
            loop=new_event_loop(),
            host=host or settings.api_host,
            port=port or settings.api_port,
            access_log=None,
            print=lambda line: click.echo(line, err=True),
        )


def new_event_loop():
    """uvloop where it is installed (it is a dependency on Linux and macOS): the API's
    throughput is mostly event-loop and driver overhead."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@click.command()
def run() -> None:
    """Start everything: embedded servers when none is configured, migrations, the
    sample catalogue, a local admin, then the sandbox, API, worker and scheduler.
    Ctrl-C stops it all. It is a laptop's command: it runs in development mode
    (FULFILLMENT_ENV=development, passed on to every process) unless told otherwise."""
    os.environ.setdefault("FULFILLMENT_ENV", "development")
    settings = load_settings()
    with backends(settings) as ready:
        migrate.upgrade(ready.database_url)
        _prepare_data(ready)
        children = [
            Child("sandbox", fulfillment_command("sandbox", "--tracker-step-seconds", "5")),
            Child("api", fulfillment_command("api")),
            Child("worker", fulfillment_command("worker", "--processes", "1")),
            Child("scheduler", fulfillment_command("scheduler")),
        ]
        click.echo(f"API on http://{ready.api_host}:{ready.api_port}  (docs: /docs)", err=True)
        code = Supervisor(children).run()
    click.echo("stopped", err=True)
    sys.exit(code)


def _prepare_data(settings: Settings) -> None:
    engine = create_sync_db_engine(settings, pool_size=1)
    try:
        with sync_session_factory(engine).begin() as session:
            added = seed_catalog(session)
        if added:
            click.echo(f"seeded the sample catalogue ({added} products)", err=True)
        email, password = _local_admin(settings, engine)
        click.echo(f"local admin: {email} / {password}", err=True)
    finally:
        engine.dispose()


def _local_admin(settings: Settings, engine) -> tuple[str, str]:
    """The local admin's credentials, kept in ``var/admin.json`` (mode 0600) so a second
    ``make run`` prints the same ones."""
    path = settings.var_dir / "admin.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return stored["email"], stored["password"]
    password = secrets.token_urlsafe(12)
    with sync_session_factory(engine).begin() as session:
        upsert_admin(session, email=LOCAL_ADMIN_EMAIL, password=password)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"email": LOCAL_ADMIN_EMAIL, "password": password}, handle)
    return LOCAL_ADMIN_EMAIL, password
