"""A merchant's webhook receiver for tests: a real aiohttp server on loopback, in a
thread of its own (so sync and async tests alike can use it), that keeps what it was
sent and answers a status the test chooses."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from fulfillment.merchant_events import SIGNATURE_HEADER

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    #: The sender's (address, port): POSTs over one kept-alive connection share it.
    peer: tuple = ()

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def signature(self) -> str:
        return self.headers[SIGNATURE_HEADER]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        #: Statuses to answer, in turn, before answering 200.
        self.failures: list[int] = []
        self._held: tuple[threading.Event, threading.Event] | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/fulfillment"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received]

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self.failures.extend(statuses)

    def hold_next(self) -> tuple[threading.Event, threading.Event]:
        """The next POST is kept unanswered: (arrived, release). The sender waits for
        its answer, between its POST and its record, until ``release`` is set."""
        arrived, release = threading.Event(), threading.Event()
        with self._lock:
            self._held = (arrived, release)
        return arrived, release

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            peer = request.transport.get_extra_info("peername") if request.transport else ()
            self.received.append(Received(dict(request.headers), body, tuple(peer or ())))
            status = self.failures.pop(0) if self.failures else 200
            held, self._held = self._held, None
        if held is not None:
            held[0].set()
            await asyncio.to_thread(held[1].wait, 30)
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._serve, daemon=True, name="merchant").start()
        if not self._ready.wait(10):
            raise RuntimeError("the receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hooks/fulfillment", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


def documented_verify():
    """The ``verify`` function of docs/webhooks.md, run as the docs print it: the tests
    check signatures with what a merchant would copy."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL).group(1)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace["verify"]
