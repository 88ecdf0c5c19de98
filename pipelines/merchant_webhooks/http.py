"""One POST to a merchant's webhook endpoint, to an address checked first.

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
    started = time.perf_counter()
    try:
        destination = parse(url, development=not production)
        address = str(checked_addresses(destination, production=production)[0])
    except RefusedUrl as exc:
        return Answer(None, time.perf_counter() - started, f"refused: {exc}")
    try:
        status, text = _send(destination, address, body, headers, timeout=timeout)
    except urllib3.exceptions.HTTPError as exc:
        return Answer(None, time.perf_counter() - started, _reason(exc))
    error = None if 200 <= status < 300 else f"HTTP {status}: {text}".strip()
    return Answer(status, time.perf_counter() - started, error)


def _send(destination: Destination, address: str, body: bytes, headers: dict[str, str], *,
          timeout: float) -> tuple[int, str]:  # fmt: skip
    options = {"port": destination.port, "timeout": urllib3.Timeout(total=timeout),
               "retries": False, "maxsize": 1}  # fmt: skip
    if destination.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address, server_hostname=destination.host, assert_hostname=destination.host,
            cert_reqs="CERT_REQUIRED", **options,
        )  # fmt: skip
    else:
        pool = urllib3.HTTPConnectionPool(address, **options)
    with pool:
        response = pool.urlopen(
            "POST", destination.target, body=body, redirect=False, preload_content=False,
            headers={**headers, "Host": destination.host_header},
        )  # fmt: skip
        try:
            text = response.read(BODY_KEPT, decode_content=False).decode("utf-8", "replace")
        finally:
            response.close()
        return response.status, text


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    reason = getattr(exc, "reason", None) or exc
    return f"{type(exc).__name__}: {reason}"[:500]
