"""CORS for browser storefronts, by aiohttp-cors: only the origins ``CORS_ORIGINS``
allows (none by default: then nothing is added and browsers refuse cross-origin calls).

Access tokens travel in the ``Authorization`` header, never in cookies, so credentials
are not allowed; a preflight may ask for the headers the API reads and the answer shows
the ones it sets.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

#: Request headers a storefront may send.
ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
#: Response headers a storefront's script may read.
EXPOSE_HEADERS = ("Idempotent-Replayed", "X-Request-ID", "Retry-After")
#: How long a browser may keep a preflight's answer.
PREFLIGHT_MAX_AGE_SECONDS = 600


def setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Call after the routes are added: each of them answers the allowed origins and
    gets its preflight (``OPTIONS``) handler."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        cors.add(route)
