"""Runs the processes of ``fulfillment run`` side by side and stops them together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

#: How long a child has to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]


def fulfillment_command(*args: str) -> list[str]:
    """The ``fulfillment`` command line, run by this very interpreter."""
    return [sys.executable, "-m", "cli", *args]


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def run(self) -> int:
        """Start every child; when one exits or a signal arrives, stop the rest.
        Returns the exit code: 0 after a requested stop, 1 if a child died."""
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._running[child.name] = subprocess.Popen(child.argv, env=os.environ.copy())
            failed = self._wait_for_first_exit()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if failed else 0

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _wait_for_first_exit(self) -> str | None:
        while not self._stopping:
            for name, process in self._running.items():
                if process.poll() is not None:
                    print(
                        f"fulfillment run: {name} exited with {process.returncode}", file=sys.stderr
                    )
                    return name
            time.sleep(0.2)
        return None

    def _stop_all(self) -> None:
        for process in self._running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self._running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
