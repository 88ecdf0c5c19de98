"""What every route of the sandbox's SendGrid answers the same way: where it is mounted,
the API key it asks for, and SendGrid's error body (``{"errors": [...]}``)."""

from __future__ import annotations

from aiohttp import web

from sandbox.sendgrid.mail import error

#: Where the sandbox mounts SendGrid.
PREFIX = "/sendgrid"


def denied(request: web.Request) -> web.Response | None:
    """SendGrid's 401 unless the request carries a bearer API key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    return errors(401, [error("authorization required", None)])


def errors(status: int, found: list[dict[str, object]]) -> web.Response:
    return web.json_response({"errors": found}, status=status)
