"""The whole system as real processes for end-to-end and chaos tests: the sandbox, the
API, worker processes (the dramatiq CLI) and the scheduler, on the test database and a
private Redis that a test may kill. Everything talks over loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fulfillment.embedded import EmbeddedRedis, free_port
from fulfillment.models import Order
from fulfillment.states import TERMINAL
from tests.support.seeds import empty_database

#: Settings that make a test system quick to retry, sweep and recover.
FAST = {
    "WORKER_MAX_RETRIES": "6",
    "WORKER_MIN_BACKOFF_MS": "100",
    "WORKER_MAX_BACKOFF_MS": "1500",
    "WORKER_TIME_LIMIT_MS": "30000",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
    "BROKER_MAINTENANCE_CHANCE": "100000",
    "STALL_AFTER_SECONDS": "6",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    "RESERVATION_TTL_SECONDS": "600",
    "JWT_SECRET": "system-test-secret-0123456789-abcdefghij",
    "FULFILLMENT_ENV": "development",  # the sandbox's built-in webhook secrets
    "LOG_LEVEL": "WARNING",
}
#: Commands of each process, after ``fulfillment``.
COMMANDS = {
    "sandbox": ["sandbox", "--tracker-step-seconds", "0.3", "--seed", "7"],
    "api": ["api"],
    "worker": ["worker", "--processes", "2", "--threads", "4"],
    "scheduler": ["scheduler"],
}
#: The ports each process listens on; a second copy of a process gets its own.
PORTS = ("API_PORT", "API_METRICS_PORT", "WORKER_METRICS_PORT", "SCHEDULER_METRICS_PORT")


class System:
    def __init__(self, workdir: Path, env: dict[str, str], redis: EmbeddedRedis, engine: Engine,
                 commands: dict[str, list[str]] | None = None):  # fmt: skip
        self.workdir, self.env, self.redis, self.engine = workdir, env, redis, engine
        self.api_url = f"http://127.0.0.1:{env['API_PORT']}"
        self.sandbox_url = f"http://127.0.0.1:{env['SANDBOX_PORT']}"
        self.commands = {**COMMANDS, **(commands or {})}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: The role (key of ``commands``) and extra environment of each named process.
        self.roles: dict[str, tuple[str, dict[str, str]]] = {}

    # --- processes ---------------------------------------------------------------------

    def start(self, name: str, *, role: str | None = None, env: dict[str, str] | None = None):
        """Start process ``name`` (``role`` names its command, ``name`` by default); a
        restart after ``stop`` reuses the role and environment it was first given."""
        role, env = self.roles.setdefault(name, (role or name, env or {}))
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        fulfillment = Path(sys.executable).with_name("fulfillment")
        self.processes[name] = subprocess.Popen(
            [str(fulfillment), *self.commands[role]], env={**self.env, **env}, cwd=self.workdir,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def start_copy(self, role: str, name: str) -> str:
        """One more ``role`` process beside the first, on ports and a var folder of its
        own; answers its base URL (meaningful for an API)."""
        env = {key: str(free_port()) for key in PORTS}
        env["VAR_DIR"] = str(self.workdir / f"var-{name}")
        self.start(name, role=role, env=env)
        return f"http://127.0.0.1:{env['API_PORT']}"

    def stop(self, name: str, *, sig: int = signal.SIGTERM) -> None:
        self.stop_all((name,), sig=sig)

    def stop_all(
        self, names: tuple[str, ...] | None = None, *, sig: int = signal.SIGTERM, grace: float = 30
    ):
        """Signal every named process (all by default) at once, then wait for each: the
        processes shut down side by side, not one after another; one still running after
        ``grace`` seconds is killed."""
        stopping = []
        for name in list(self.processes) if names is None else names:
            process = self.processes.pop(name, None)
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                stopping.append(process)
        deadline = time.monotonic() + grace
        for process in stopping:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def worker_pids(self, name: str = "worker") -> list[int]:
        """The processes the dramatiq master forked (workers and its metrics server)."""
        wrapper = psutil.Process(self.processes[name].pid)
        masters = [p for p in wrapper.children() if "dramatiq" in " ".join(p.cmdline())]
        return [child.pid for master in masters for child in master.children()]

    def logs(self, tail: int = 12, width: int = 240) -> str:
        """The last lines of each process's log, cut short: enough to see what broke."""
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(line[:width] for line in lines))
        return "\n".join(out)

    # --- waiting -----------------------------------------------------------------------

    def wait_http(self, url: str, *, timeout: float = 60) -> None:
        wait_until(lambda: _ok(url), timeout=timeout, what=url, on_fail=self.logs)

    def wait_ready(self) -> None:
        self.wait_http(f"{self.sandbox_url}/_sandbox/health")
        self.wait_http(f"{self.api_url}/readyz")

    def order_statuses(self) -> dict[str, int]:
        with Session(self.engine) as session:
            return dict(
                session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
            )

    def wait_all_terminal(self, *, expected: int, timeout: float = 180) -> dict[str, int]:
        def done() -> dict[str, int] | None:
            statuses = self.order_statuses()
            finished = sum(n for s, n in statuses.items() if s in TERMINAL)
            return statuses if finished >= expected else None

        return wait_until(done, timeout=timeout, what=f"{expected} terminal orders",
                          on_fail=lambda: f"{self.order_statuses()}\n{self.logs()}")  # fmt: skip

    # --- the sandbox -------------------------------------------------------------------

    def faults(self, **faults: dict[str, Any]) -> None:
        requests.post(
            f"{self.sandbox_url}/_sandbox/faults", json=faults, timeout=5
        ).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=5).raise_for_status()

    def fulfillment(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        fulfillment = Path(sys.executable).with_name("fulfillment")
        return subprocess.run([str(fulfillment), *args], env=self.env, cwd=self.workdir,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str, on_fail=None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = on_fail() if on_fail else ""
            raise AssertionError(f"gave up waiting for {what} after {timeout} s\n{detail}")
        time.sleep(0.2)


@contextmanager
def running_system(
    workdir: Path,
    *,
    database_url: str,
    engine: Engine,
    extra_env: dict[str, str] | None = None,
    start: tuple[str, ...] = ("sandbox", "api", "worker", "scheduler"),
    commands: dict[str, list[str]] | None = None,
) -> Iterator[System]:
    """A fresh system: empty tables, a private Redis, every process started and ready."""
    empty_database(engine)
    redis = EmbeddedRedis(workdir, persist=False)
    redis_url = redis.start()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "SENDGRID_", "EASYPOST_"))
    }
    env.update(FAST)
    env.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, VAR_DIR=str(workdir / "var"),
        API_PORT=str(free_port()), SANDBOX_PORT=str(free_port()),
        WORKER_METRICS_PORT=str(free_port()), SCHEDULER_METRICS_PORT=str(free_port()),
        API_METRICS_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    env.pop("BROKER_URL", None)
    env.update(extra_env or {})
    system = System(workdir, env, redis, engine, commands)
    try:
        for name in start:
            system.start(name)
        system.wait_ready()
        yield system
    finally:
        # the test is over: a worker finishing its messages in flight (a slow fault's)
        # serves nothing now, so it has a few seconds, not thirty
        system.stop_all(grace=3)
        redis.stop()
