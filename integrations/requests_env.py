"""What requests would look up in the environment on every call (proxy variables, ~/.netrc,
the CA bundle variables), looked up once per session where the answer cannot change:
the SDKs' sessions (EasyPost's, Stripe's per thread) otherwise walk ``os.environ`` on
every request."""

from __future__ import annotations

import os
from pathlib import Path

import requests


def needs_requests() -> bool:
    """Whether the environment holds what requests looks up per host: a proxy variable
    or a ~/.netrc (``integrations.sdk_http`` then hands the SDKs requests itself)."""
    names = {name.lower() for name in os.environ}
    netrc = os.environ.get("NETRC") or Path.home() / ".netrc"
    return bool(names & {"http_proxy", "https_proxy", "all_proxy"}) or Path(netrc).exists()


def settle_environment(session: requests.Session) -> None:
    """With no proxy variables and no ~/.netrc, only the CA bundle variables matter: they
    are applied to the session here and requests stops looking (``trust_env``)."""
    if needs_requests():
        return  # requests keeps looking (proxies and credentials may depend on the host)
    session.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
