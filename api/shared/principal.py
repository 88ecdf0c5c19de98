"""Who is calling: the principal a route's access guard (``api.shared.access``) found,
kept on the request for the handlers and the response headers."""

from __future__ import annotations

from aiohttp import web

from api.shared.tokens import Principal

PRINCIPAL = web.RequestKey("principal", Principal)


def authenticate(request: web.Request) -> Principal:
    """The caller of a signed-in route, as its access guard (``api.shared.access``) found them:
    a valid token of an active account, with the role the database gives it now."""
    principal = request.get(PRINCIPAL)
    if principal is None:  # a handler of a public route asked: a bug, not a 401
        raise RuntimeError(f"{request.path} is declared public in its feature's routes.py")
    return principal
