"""Named points inside a writer's transaction, where a test can hold that writer while
another one runs (``tests.support.interleave``).

A writer of an order, a payment or a session calls ``reach("step.point")`` at the
moment that matters for a race (after its read, before its commit). In production no
hook is registered and the call is one dict lookup; a test registers a hook that blocks
the writer's thread (or coroutine) until the test lets it go, so an interleaving that
happens once in thousands of runs happens every time. The concurrency map
(``docs/concurrency.md``) names which pairs the points serve.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

#: Hooks by point name, registered by tests only.
_SYNC: dict[str, Callable[[], None]] = {}
_ASYNC: dict[str, Callable[[], Awaitable[None]]] = {}


def reach(name: str) -> None:
    """A synchronous writer (a step on a worker thread) reaches point ``name``."""
    hook = _SYNC.get(name)
    if hook is not None:
        hook()


async def reach_async(name: str) -> None:
    """An asynchronous writer (an API handler on the event loop) reaches ``name``."""
    hook = _ASYNC.get(name)
    if hook is not None:
        await hook()


def armed(name: str) -> bool:
    """Whether a test holds point ``name``: a writer that sends its last statements and
    its COMMIT together splits them there only then."""
    return name in _ASYNC or name in _SYNC


def install(name: str, hook: Callable[[], None], async_hook: Callable[[], Awaitable[None]]) -> None:
    """Register the hooks of point ``name`` (tests only); ``remove`` takes them away."""
    _SYNC[name] = hook
    _ASYNC[name] = async_hook


def remove(name: str) -> None:
    _SYNC.pop(name, None)
    _ASYNC.pop(name, None)
