"""The interleaving harness holds a writer at its named point until released, lets
writers past once its count is spent, and never hangs a failing test."""

from __future__ import annotations

import asyncio

from fulfillment.checkpoints import reach, reach_async
from tests.support.interleave import hold, in_thread


def test_a_held_writer_waits_at_its_point_until_released_and_others_pass():
    events: list[str] = []

    def writer(name: str) -> None:
        events.append(f"{name} read")
        reach("unit.before_commit")
        events.append(f"{name} commit")

    with hold("unit.before_commit") as point:
        first = in_thread(lambda: writer("first"))
        point.wait_reached()
        writer("second")  # the count is spent: the second passes
        assert events == ["first read", "second read", "second commit"]
        point.release()
        first.result(timeout=5)
    assert events[-1] == "first commit"
    assert point.passed == 2


def test_a_point_nobody_holds_costs_nothing_and_a_forgotten_hold_lets_go():
    reach("unit.nobody")  # no hook: returns at once
    with hold("unit.forgotten", timeout=0.2) as point:
        done = in_thread(lambda: reach("unit.forgotten"))
        assert done.result(timeout=5) is None
    assert point.reached


async def test_an_async_writer_is_held_without_blocking_the_event_loop():
    order: list[str] = []

    async def handler() -> None:
        await reach_async("unit.async")
        order.append("handler")

    with hold("unit.async") as point:
        task = asyncio.create_task(handler())
        await point.wait_reached_async()
        order.append("loop free")
        point.release()
        await asyncio.wait_for(task, 5)
    assert order == ["loop free", "handler"]
