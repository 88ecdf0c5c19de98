"""Deterministic interleavings of two writers: hold one at a named point
(``fulfillment.checkpoints.reach``) while the other runs, then let it go.

    with hold("ship_order.before_commit") as point:
        shipping = in_thread(lambda: run_steps(deps, order_id, ...))
        point.wait_reached()          # the first writer is inside its transaction
        deliver_tracker_event(...)    # the second writer runs to its end (or blocks)
        point.release()               # the first one commits
        shipping.result()

A held writer that nobody releases is let go after ``timeout`` seconds, so a test that
fails never hangs. Async writers (API handlers) are held without blocking the event
loop. The test's second writer may itself block on a lock the first one holds: then
``run_until_blocked`` shows it waiting (``pg_stat_activity``) before the release.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from fulfillment import checkpoints

T = TypeVar("T")

#: The longest a point may hold a writer before letting it go by itself.
HOLD_SECONDS = 20.0


class Point:
    """One named point: holds the first ``times`` writers that reach it."""

    def __init__(self, name: str, *, times: int, timeout: float) -> None:
        self.name, self.timeout = name, timeout
        self._left = times
        self._lock = threading.Lock()
        self._reached = threading.Event()
        self._go = threading.Event()
        #: How many writers passed the point (held or not).
        self.passed = 0

    def _take(self) -> bool:
        with self._lock:
            self.passed += 1
            if self._left <= 0:
                return False
            self._left -= 1
            self._reached.set()
            return True

    def _hook(self) -> None:
        if self._take():
            self._go.wait(self.timeout)

    async def _async_hook(self) -> None:
        if self._take():
            deadline = time.monotonic() + self.timeout
            while not self._go.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)

    def wait_reached(self, timeout: float = 10.0) -> None:
        """Wait until a writer is held here (fails the test if none comes)."""
        assert self._reached.wait(timeout), f"no writer reached {self.name!r} in {timeout} s"

    async def wait_reached_async(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._reached.is_set():
            assert time.monotonic() < deadline, f"no writer reached {self.name!r}"
            await asyncio.sleep(0.005)

    @property
    def reached(self) -> bool:
        return self._reached.is_set()

    def release(self) -> None:
        self._go.set()


@contextmanager
def hold(name: str, *, times: int = 1, timeout: float = HOLD_SECONDS) -> Iterator[Point]:
    """Hold the first ``times`` writers reaching ``name`` until ``release``; the point is
    released and removed when the block ends, whatever happened in it."""
    point = Point(name, times=times, timeout=timeout)
    checkpoints.install(name, point._hook, point._async_hook)
    try:
        yield point
    finally:
        point.release()
        checkpoints.remove(name)


_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="writer")


def in_thread(work: Callable[[], T]) -> Future[T]:
    """Run one writer on a thread of its own; ``.result(timeout)`` joins it."""
    return _POOL.submit(work)


def waiting_on_lock(engine: Engine) -> int:
    """How many backends of this database wait on a lock right now."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


async def until_waiting(engine: Engine, before: int) -> None:
    """Wait (without blocking the event loop) until more backends wait on a lock than
    ``before`` (``waiting_on_lock`` taken before the second writer started)."""
    for _ in range(500):
        if await asyncio.to_thread(waiting_on_lock, engine) > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer never waited on the first one's lock")


def run_until_blocked(engine: Engine, work: Callable[[], Any], *, timeout: float = 10.0):
    """Start ``work`` on a thread and wait until it waits on a row lock (or has ended):
    the second writer of a pair stands behind the first."""
    before = waiting_on_lock(engine)
    future = in_thread(work)
    deadline = time.monotonic() + timeout
    while not future.done() and waiting_on_lock(engine) <= before:
        assert time.monotonic() < deadline, "the second writer neither ended nor waited"
        time.sleep(0.01)
    return future
