"""The bench's own PostgreSQL and Redis: embedded ones (the same wheels as ``make run``)
in a fresh folder, started for the run and removed after it. Knowing their process ids
is what lets the bench count their CPU, and only theirs, whatever else the machine runs."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import make_url

from fulfillment.embedded import EmbeddedPostgres, EmbeddedRedis


@dataclass(frozen=True)
class Servers:
    #: A URL of the server's ``postgres`` database (administration, statistics).
    admin_url: str
    redis_url: str
    #: Root process id by role: PostgreSQL's postmaster and the Redis server.
    roots: dict[str, int]


def postmaster_pid(pgdata: Path) -> int:
    """The first line of ``postmaster.pid`` is the postmaster's process id."""
    return int((pgdata / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def own_servers(folder: Path) -> Iterator[Servers]:
    postgres = EmbeddedPostgres(folder, delete_on_stop=True)
    broker = EmbeddedRedis(folder)
    try:
        postgres.start()
        redis_url = broker.start()
        client = redis.Redis.from_url(redis_url)
        redis_pid = int(client.info("server")["process_id"])
        client.close()
        roots = {"postgresql": postmaster_pid(postgres.pgdata), "redis": redis_pid}
        yield Servers(admin_url=postgres.admin_url, redis_url=redis_url, roots=roots)
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def database_url(server_url: str, database: str) -> str:
    """The URL of another database on the same server."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)
