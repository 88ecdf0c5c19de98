"""POSTs to a merchant's webhook endpoint, to an address checked first.

The host is resolved here, each address checked (in production: public ones only,
``fulfillment.destinations``), and the connection made to the checked address itself,
with the URL's host in ``Host`` and, for https, in SNI and the certificate check. A name
that resolves to another address between the check and the connection (DNS
rebinding) cannot redirect the request. Redirects are not followed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3

from fulfillment.destinations import Destination, RefusedUrl, checked_addresses, parse

#: What of an answer's body is kept in the attempt log (an error page, say).
BODY_KEPT = 200
#: The most of an answer's body read past that to keep its connection for the next POST.
DRAINED = 16 * 1024


@dataclass(frozen=True)
class Answer:
    #: The HTTP status, or None when there was none (refused, timed out, unreachable).
    status: int | None
    seconds: float
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, headers: dict[str, str], *, production: bool,
         timeout: float) -> Answer:  # fmt: skip
    """POST ``body`` to ``url``; never raises for what the endpoint or the network did."""
    with Poster(production=production, timeout=timeout) as poster:
        return poster.post(url, body, headers)


class Poster:
    """POSTs to merchants' endpoints over kept-alive connections, for one batch of
    deliveries: each URL's host is resolved and checked once, before the batch's first
    connection to it, and that connection (to the checked address) carries the batch's
    other POSTs to it. A connection the endpoint closed meanwhile is replaced at once
    (urllib3 checks before reuse), to the same checked address."""

    def __init__(self, *, production: bool, timeout: float) -> None:
        self._production = production
        self._timeout = timeout
        self._targets: dict[str, tuple[Destination, urllib3.HTTPConnectionPool] | str] = {}

    def __enter__(self) -> Poster:
        return self

    def __exit__(self, *exc: object) -> None:
        for target in self._targets.values():
            if not isinstance(target, str):
                target[1].close()
        self._targets.clear()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` to ``url``; never raises for what the endpoint or the network did."""
        started = time.perf_counter()
        target = self._targets.get(url)
        if target is None:
            try:
                destination = parse(url, development=not self._production)
                address = str(checked_addresses(destination, production=self._production)[0])
                target = (destination, _pool(destination, address, timeout=self._timeout))
            except RefusedUrl as exc:
                target = f"refused: {exc}"
            self._targets[url] = target
        if isinstance(target, str):
            return Answer(None, time.perf_counter() - started, target)
        destination, pool = target
        try:
            status, text = _send(pool, destination, body, headers)
        except urllib3.exceptions.HTTPError as exc:
            return Answer(None, time.perf_counter() - started, _reason(exc))
        error = None if 200 <= status < 300 else f"HTTP {status}: {text}".strip()
        return Answer(status, time.perf_counter() - started, error)


def _pool(destination: Destination, address: str, *, timeout: float) -> urllib3.HTTPConnectionPool:
    options = {"port": destination.port, "timeout": urllib3.Timeout(total=timeout),
               "retries": False, "maxsize": 1}  # fmt: skip
    if destination.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, server_hostname=destination.host, assert_hostname=destination.host,
            cert_reqs="CERT_REQUIRED", **options,
        )  # fmt: skip
    return urllib3.HTTPConnectionPool(address, **options)


def _send(pool: urllib3.HTTPConnectionPool, destination: Destination, body: bytes,
          headers: dict[str, str]) -> tuple[int, str]:  # fmt: skip
    response = pool.urlopen(
        "POST", destination.target, body=body, redirect=False, preload_content=False,
        headers={**headers, "Host": destination.host_header},
    )  # fmt: skip
    try:
        text = response.read(BODY_KEPT, decode_content=False).decode("utf-8", "replace")
        left = response.length_remaining
        if left is not None and left <= DRAINED:
            response.drain_conn()  # the rest of a short answer: the connection is reused
        else:
            response.close()  # a long or unsized answer is not read: a new connection
    finally:
        response.release_conn()
    return response.status, text


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    reason = getattr(exc, "reason", None) or exc
    return f"{type(exc).__name__}: {reason}"[:500]
