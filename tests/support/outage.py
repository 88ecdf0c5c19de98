"""A TCP relay in front of a real server (PostgreSQL, Redis) that a test can take down and
bring back, as a server that stops and restarts looks to its clients: while it is down
every open connection is cut and new ones are refused; once it is up again, connections
reach the real server. The server itself keeps running for the rest of the run.

The relay listens on loopback TCP whatever the server listens on: a server reached over
a Unix socket (the embedded PostgreSQL, ``postgresql://postgres:@/db?host=/run/dir``) is
relayed to that socket, and the relay's URL names the TCP address instead, so a test
cuts the same kind of connection in both configurations."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fulfillment.embedded import free_port


class Outage:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        port = parts.port or _default_port(parts.scheme)
        socket_dir = query.pop("host", None)
        #: The server: a Unix socket's path (libpq's ``host=/dir``), or (host, port).
        self._target: str | tuple[str, int]
        if socket_dir and socket_dir.startswith("/"):
            self._target = str(Path(socket_dir) / f".s.PGSQL.{port}")
        else:
            self._target = (parts.hostname or "127.0.0.1", port)
        self.port = free_port()
        netloc = parts.netloc.rsplit("@", 1)
        credentials = f"{netloc[0]}@" if len(netloc) == 2 else ""
        #: ``url`` through the relay.
        self.url = urlunsplit(
            parts._replace(netloc=f"{credentials}127.0.0.1:{self.port}", query=urlencode(query))
        )
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuse new connections and cut every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        try:
            if isinstance(self._target, str):
                server_r, server_w = await asyncio.open_unix_connection(self._target)
            else:
                server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        pipes = [asyncio.create_task(_pipe(client_r, server_w)),
                 asyncio.create_task(_pipe(server_r, client_w))]  # fmt: skip
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            for writer in (client_w, server_w):
                writer.transport.abort()
            self._pipes.difference_update(pipes)
            self._writers.difference_update((client_w, server_w))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


def _default_port(scheme: str) -> int:
    return 6379 if scheme.startswith("redis") else 5432
