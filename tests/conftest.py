"""Shared fixtures: real PostgreSQL and Redis for every test that asks for them.

Those named by DATABASE_URL / REDIS_URL when set (CI uses the ones on loopback),
otherwise embedded servers started once per run. Either way the run gets a database
of its own, built by the real Alembic migrations, and dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from sqlalchemy import make_url

from fulfillment import migrate
from fulfillment.db import create_sync_db_engine
from fulfillment.embedded import EmbeddedPostgres, EmbeddedRedis
from fulfillment.settings import Settings, load_settings
from tests.support.seeds import empty_database, remember_seeds
from tests.support.system import running_system

#: The tests run in development mode, explicitly: the built-in sandbox secrets sign the
#: sandbox's webhooks, and every process a test starts inherits this.
os.environ["FULFILLMENT_ENV"] = "development"


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _redis_of_this_process(url: str) -> str:
    """A configured Redis, shared by the run's processes (``pytest -n``): each takes a
    database of its own below the one configured (queues and keys never meet), as each
    takes a PostgreSQL database of its own (``database_url``)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parts = urlsplit(url)
    index = (int(parts.path.strip("/") or 0) - 1 - int(worker.removeprefix("gw"))) % 16
    return urlunsplit(parts._replace(path=f"/{index}"))


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL) of real servers, configured or embedded."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    # Outside pytest's own temporary root, which is private to root (0700): embedded
    # PostgreSQL runs as its own system user and must reach its data directory.
    var_dir = Path(tempfile.mkdtemp(prefix="fulfillment-test-servers-"))
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        postgres = EmbeddedPostgres(var_dir, delete_on_stop=True)
        postgres.start()
        started.append(postgres)
        database_url = postgres.admin_url
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        redis_url = _redis_of_this_process(redis_url)
    else:
        embedded_redis = EmbeddedRedis(var_dir)
        redis_url = embedded_redis.start()
        started.append(embedded_redis)
    try:
        yield database_url, redis_url
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A database of this run's own, migrated to head, dropped afterwards."""
    admin_url = _with_database(server_urls[0], "postgres")
    name = f"fulfillment_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_urls[0], name)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[1]


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        redis_url=redis_url,
        var_dir=tmp_path / "var",
        jwt_secret="test-secret-0123456789-0123456789-abcdef",
        db_pool_size=5,
        throttle_key_prefix=f"test-throttle:{uuid.uuid4().hex[:10]}",  # counts of its own
    )


@pytest.fixture
def db(settings: Settings) -> Iterator:
    """A sync engine on the test database; every table is emptied after the test (the
    migrations' seed rows, the default location, are put back)."""
    engine = create_sync_db_engine(settings, pool_size=2)
    remember_seeds(engine)
    try:
        yield engine
    finally:
        empty_database(engine)
        engine.dispose()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def system(tmp_path, database_url, db, request):
    """Sandbox, API, workers and scheduler as real processes, for the end-to-end and
    chaos tests (extra environment from ``@pytest.mark.system_env(...)``)."""
    marker = request.node.get_closest_marker("system_env")
    extra = marker.kwargs if marker else {}
    with running_system(tmp_path, database_url=database_url, engine=db, extra_env=extra) as running:
        yield running
