"""Headers every answer carries, set as the response is prepared (so they are on
answers from every handler, middleware and aiohttp's own errors alike):

- ``X-Content-Type-Options: nosniff``: browsers take the declared content type;
- ``Cache-Control: no-store`` on anything that is not a successful public read
  (signed-in answers, token responses, errors): no shared cache keeps them;
- ``Server: fulfillment``: no aiohttp version for scanners to match.
"""

from __future__ import annotations

from aiohttp import web

from api.shared.principal import PRINCIPAL

#: What the ``Server`` header says.
SERVER = "fulfillment"
#: Methods whose successful public answers may be cached.
READS = frozenset({"GET", "HEAD"})


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` signal handler."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = SERVER
    if (
        response.status >= 400
        or request.method not in READS
        or PRINCIPAL in request
        or "Authorization" in request.headers
    ):
        response.headers["Cache-Control"] = "no-store"


def setup_headers(app: web.Application) -> None:
    app.on_response_prepare.append(security_headers)
