"""An aiohttp app in a background thread with its own event loop, for callers that are
not async themselves (tests, ``fulfillment run``); ``SandboxThread`` runs the sandbox."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from sandbox.app import create_sandbox_app, start_app
from sandbox.config import SandboxConfig

#: Seconds to wait for the server to start or stop.
THREAD_TIMEOUT = 10.0


class AppThread:
    """``with AppThread(make_app) as server: server.url`` - a free loopback port by
    default; stopped, with its cleanup run, on exit."""

    def __init__(
        self,
        make_app: Callable[[], web.Application],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._make_app = make_app
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self.url = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def start(self) -> AppThread:
        self._thread.start()
        if not self._ready.wait(THREAD_TIMEOUT):
            raise RuntimeError("the sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError("the sandbox failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(THREAD_TIMEOUT)

    def __enter__(self) -> AppThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner, self.url = self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

    async def _start(self) -> tuple[web.AppRunner, str]:
        return await start_app(self._make_app(), host=self._host, port=self._port)


class SandboxThread(AppThread):
    """``with SandboxThread(config) as sandbox: sandbox.url``: the sandbox, on a free
    loopback port by default; its pending webhooks are cancelled on exit."""

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        super().__init__(lambda: create_sandbox_app(self.config), host=host, port=port)
