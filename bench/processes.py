"""Starting and stopping the processes a benchmark measures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from fulfillment.embedded import free_port

FULFILLMENT = [sys.executable, "-m", "cli"]


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - held by the child
        self.running[name] = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def wait_http(url: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def system(env: dict[str, str], logs: Path, *, workers: int, threads: int = 8):
    """Sandbox (no added latency, a fast carrier clock), API, scheduler and workers.
    Yields the environment (with their ports) and each one's process group id."""
    env = {**env, "API_PORT": str(free_port()), "SANDBOX_PORT": str(free_port()),
           "WORKER_METRICS_PORT": str(free_port()), "SCHEDULER_METRICS_PORT": str(free_port())}  # fmt: skip
    procs = Processes(env, logs)
    try:
        procs.start("sandbox", [*FULFILLMENT, "sandbox", "--tracker-step-seconds", "0.05"])
        procs.start("api", [*FULFILLMENT, "api"])
        procs.start("scheduler", [*FULFILLMENT, "scheduler"])
        procs.start("worker", [*FULFILLMENT, "worker", "-p", str(workers), "-t", str(threads)])
        wait_http(f"http://127.0.0.1:{env['SANDBOX_PORT']}/_sandbox/health")
        wait_http(f"http://127.0.0.1:{env['API_PORT']}/readyz")
        wait_http(f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics")
        yield env, {name: process.pid for name, process in procs.running.items()}
    finally:
        procs.stop_all()
