"""Runs the processes of ``fulfillment run`` side by side, restarts any that dies, and
stops them together.

A child that exits on its own (a crash, ``kill -9``, the OOM killer) is started again
after a backoff that doubles with each quick death (0.5 s, 1 s, 2 s … up to 30 s) and
resets once the child has stayed up a while, so a crash loop does not spin while one
crash a day costs half a second. Every death is logged with its exit code (or signal).
Only Ctrl-C or SIGTERM stops the whole stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

#: How long a child has to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 10.0
#: The first restart's delay, and the most any restart waits.
RESTART_BACKOFF_SECONDS = 0.5
RESTART_BACKOFF_MAX_SECONDS = 30.0
#: A child that stayed up this long died by accident, not in a loop: backoff resets.
STABLE_AFTER_SECONDS = 30.0
#: How often the supervisor looks at its children.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]


@dataclass
class _Running:
    child: Child
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    #: When a dead child is due to start again (monotonic), if it is waiting.
    restart_at: float | None = None


def fulfillment_command(*args: str) -> list[str]:
    """The ``fulfillment`` command line, run by this very interpreter."""
    return [sys.executable, "-m", "cli", *args]


def describe_exit(code: int) -> str:
    """``exit code 1``, or ``signal SIGKILL`` for a child a signal ended."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def backoff_seconds(quick_deaths: int) -> float:
    """Delay before the restart that follows ``quick_deaths`` deaths in a row (>= 1)."""
    return min(RESTART_BACKOFF_MAX_SECONDS, RESTART_BACKOFF_SECONDS * 2 ** (quick_deaths - 1))


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self._running = [_Running(child) for child in children]
        self._stopping = False

    def run(self) -> int:
        """Start every child and keep them running until a signal arrives; returns 0."""
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for entry in self._running:
                self._start(entry)
            while not self._stopping:
                self._tend(time.monotonic())
                time.sleep(POLL_SECONDS)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _start(self, entry: _Running) -> None:
        entry.process = subprocess.Popen(entry.child.argv, env=os.environ.copy())
        entry.started = time.monotonic()
        entry.restart_at = None

    def _tend(self, now: float) -> None:
        for entry in self._running:
            if entry.restart_at is not None:
                if now >= entry.restart_at:
                    self._start(entry)
                continue
            assert entry.process is not None
            code = entry.process.poll()
            if code is None:
                continue
            entry.restarts = (
                1 if now - entry.started >= STABLE_AFTER_SECONDS else entry.restarts + 1
            )
            delay = backoff_seconds(entry.restarts)
            entry.restart_at = now + delay
            _say(f"{entry.child.name} died ({describe_exit(code)}); restarting in {delay:g} s")

    def _stop_all(self) -> None:
        processes = [e.process for e in self._running if e.process is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _say(line: str) -> None:
    print(f"fulfillment run: {line}", file=sys.stderr, flush=True)
