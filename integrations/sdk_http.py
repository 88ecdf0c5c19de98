"""The HTTP session the Stripe and EasyPost SDKs call through: urllib3's pool itself, in
the shape of the ``requests.Session.request`` the SDKs use, where requests would add
nothing but its own cost.

requests spent about 200 µs of CPU a call on top of urllib3 (preparing the request,
merging hooks, cookies and settings, building its response): measured against the
sandbox, 460 µs a call against 250 µs for the same POST on urllib3, some 9 % of a
worker's CPU at about five provider calls an order. What a call sends and receives is
the same: the method, URL, query, headers and body the SDK built, over kept-alive
connections, with no retry and no redirect (``call_provider`` owns the retries), the
certificate checked against the same bundle requests would use. A failure is raised as
the ``requests`` exception requests would have raised for it, with urllib3's error as
its cause, so the SDKs and ``integrations.errors`` tell a timeout from a refused
connection as before.

With a proxy variable or a ``~/.netrc`` in the environment (which requests honours,
per host), the SDKs get a settled ``requests.Session`` instead
(``integrations.requests_env``)."""

from __future__ import annotations

import json as jsonlib
import os
import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import requests
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from integrations.requests_env import needs_requests, settle_environment


def sdk_session(*, connections: int = 10) -> PooledSession | requests.Session:
    """The session an SDK client is given: pooled urllib3 (``connections`` kept per
    host, requests' own default, enough for a worker's threads), or requests where the
    environment asks for what only requests does (a proxy, ~/.netrc)."""
    if needs_requests():
        session = requests.Session()
        settle_environment(session)
        return session
    return PooledSession(connections=connections)


class PooledSession:
    """``request(method, url, params=, data=, json=, headers=, timeout=, verify=)`` as
    requests' session answers it, on urllib3 pools (one per origin) shared by every
    thread."""

    def __init__(self, *, connections: int = 10) -> None:
        self._connections = connections
        #: One pool per (origin, certificate bundle): the providers' few hosts.
        self._pools: dict[tuple[str, bool | str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()
        self._bundle = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            or certifi.where()
        )  # fmt: skip

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        data: Any = None,
        json: Any = None,
        headers: Any = None,
        timeout: Any = None,
        verify: bool | str = True,
        **_: Any,
    ) -> PooledResponse:
        headers = dict(headers or {})
        body = data
        if json is not None and data is None:
            body = jsonlib.dumps(json, allow_nan=False).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, dict):
            body = urlencode(body, doseq=True)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if isinstance(body, str):
            body = body.encode()
        if params:
            url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params, doseq=True)}"
        try:
            pool = self._pool(url, verify)
            answer = pool.urlopen(method.upper(), url, body=body, headers=headers,
                                  timeout=_timeout(timeout), retries=False, redirect=False,
                                  assert_same_host=False, preload_content=True)  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise _as_requests_error(exc) from exc
        return PooledResponse(answer)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    @property
    def connections_opened(self) -> int:
        """Connections opened so far, over every host."""
        return sum(pool.num_connections for pool in list(self._pools.values()))

    def _pool(self, url: str, verify: bool | str) -> urllib3.HTTPConnectionPool:
        """The origin's pool, made on its first call (a dict lookup after that: urllib3's
        PoolManager parsed the URL and built a key on every request)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get((origin, verify))
        if pool is None:
            with self._lock:
                pool = self._pools.get((origin, verify))
                if pool is None:
                    pool = urllib3.connection_from_url(origin, maxsize=self._connections,
                                                       retries=False, **self._tls(url, verify))  # fmt: skip
                    self._pools[(origin, verify)] = pool
        return pool

    def _tls(self, url: str, verify: bool | str) -> dict[str, Any]:
        if not url.startswith("https:"):
            return {}
        if verify is False:
            return {"cert_reqs": "CERT_NONE"}
        return {"cert_reqs": "CERT_REQUIRED",
                "ca_certs": verify if isinstance(verify, str) else self._bundle}  # fmt: skip


class PooledResponse:
    """What the SDKs read of requests' response."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, answer: urllib3.BaseHTTPResponse) -> None:
        self.status_code = answer.status
        self.headers = answer.headers  # case-insensitive, as requests' are
        self.content = answer.data

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _timeout(timeout: Any) -> urllib3.Timeout | None:
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(connect=timeout, read=timeout)


def _as_requests_error(exc: urllib3.exceptions.HTTPError) -> requests.RequestException:
    """The exception ``requests.adapters.HTTPAdapter.send`` raises for ``exc``."""
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return requests.exceptions.ConnectTimeout(exc)
    if isinstance(exc, ReadTimeoutError):
        return requests.exceptions.ReadTimeout(exc)
    if isinstance(exc, SSLError):
        return requests.exceptions.SSLError(exc)
    return requests.exceptions.ConnectionError(exc)  # refused, reset, closed mid-answer
