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

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.running.items()}

    def wait_http(self, url: str, *, timeout: float = 60.0) -> None:
        """Until ``url`` answers 200; a process that dies meanwhile ends the wait at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dead := [name for name, p in self.running.items() if p.poll() is not None]:
                raise SystemExit(f"{', '.join(dead)} stopped; see {self.logs}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{url} did not come up")

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


@contextmanager
def system(env: dict[str, str], logs: Path, *, workers: int, tracker_step: float,
           threads: int = 8):  # fmt: skip
    """Sandbox (no added latency; trackers move one status every ``tracker_step``
    seconds), API, scheduler and workers. Yields the environment (with their ports) and
    each one's process id, the root of the process tree its CPU is counted from."""
    env = {**env, "API_PORT": str(free_port()), "SANDBOX_PORT": str(free_port()),
           "WORKER_METRICS_PORT": str(free_port()), "SCHEDULER_METRICS_PORT": str(free_port()),
           "API_METRICS_PORT": str(free_port())}  # fmt: skip
    procs = Processes(env, logs)
    try:
        procs.start(
            "sandbox", [*FULFILLMENT, "sandbox", "--tracker-step-seconds", str(tracker_step)]
        )
        procs.start("api", [*FULFILLMENT, "api"])
        procs.start("scheduler", [*FULFILLMENT, "scheduler"])
        procs.start("worker", [*FULFILLMENT, "worker", "-p", str(workers), "-t", str(threads)])
        procs.wait_http(f"http://127.0.0.1:{env['SANDBOX_PORT']}/_sandbox/health")
        procs.wait_http(f"http://127.0.0.1:{env['API_PORT']}/readyz")
        procs.wait_http(f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics")
        yield env, procs.pids()
    finally:
        procs.stop_all()
