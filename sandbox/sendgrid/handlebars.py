"""Handlebars for the sandbox's SendGrid, through pybars3, on one thread of its own.

pybars compiles slowly (a tenth of a second per template section, seconds to import)
and its compiler is not safe to use from two threads; rendering is fast (a third of a
millisecond). So one background thread compiles and renders for the whole process,
compiled templates are kept by source, and a mail is rendered after SendGrid's 202,
as SendGrid itself renders after accepting: the event loop never waits for pybars.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Compiled templates by the SHA-256 of their source (touched by the render thread only).
_COMPILED: dict[str, Any] = {}


def _compiled(source: str) -> Any:
    key = hashlib.sha256(source.encode()).hexdigest()
    found = _COMPILED.get(key)
    if found is None:
        import pybars  # seconds to import (it builds its grammar): not at start-up

        found = _COMPILED[key] = pybars.Compiler().compile(source)
    return found


def render(sections: Mapping[str, str], data: Mapping[str, Any]) -> dict[str, str]:
    """Each section rendered with ``data``; a section that is not valid Handlebars
    renders as the error pybars reports. Call it on the render thread only."""
    out = {}
    for name, source in sections.items():
        try:
            out[name] = str(_compiled(source or "")(dict(data)))
        except Exception as exc:  # pybars raises its grammar's own errors
            out[name] = f"[not rendered: {type(exc).__name__}: {exc}]"
    return out


class Renderer:
    """The one thread that runs pybars; results go back to the caller's event loop."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], Any], done: Callable[[Any], None] | None = None) -> None:
        """Run ``job`` on the render thread, then ``done(result)`` on the loop that
        submitted it. Outside an event loop the job runs at once, on this thread."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            result = job()
            if done is not None:
                done(result)
            return
        self._start()
        self._jobs.put((job, done, loop))

    def warm_up(self, sources: Iterable[str]) -> None:
        """Compile ``sources`` now, so the first mails using them wait for nothing."""
        texts = list(sources)
        self._start()
        self._jobs.put((lambda: [_compiled(text) for text in texts], None, None))

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="handlebars", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job, done, loop = self._jobs.get()
            try:
                result = job()
            except Exception:
                log.exception("rendering failed")
                continue
            if done is not None and loop is not None:
                with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits
                    loop.call_soon_threadsafe(done, result)


#: The process's render thread.
RENDERER = Renderer()
