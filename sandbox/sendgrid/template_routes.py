"""SendGrid's Templates API under ``/sendgrid/v3/templates``, as the SDK calls it:

- ``POST /v3/templates`` (``{"name", "generation"}``) and ``GET /v3/templates``
  (``generations``, ``page_size`` 1..200, ``page_token``; ``{"result", "_metadata"}``)
- ``GET|PATCH|DELETE /v3/templates/{id}``
- ``POST /v3/templates/{id}/versions``, ``GET|PATCH|DELETE …/versions/{version_id}``,
  ``POST …/versions/{version_id}/activate``
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.sendgrid.http import PREFIX, denied, errors
from sandbox.sendgrid.templates import TemplateError, TemplateLibrary
from sandbox.world import SANDBOX

TEMPLATES = f"{PREFIX}/v3/templates"
TEMPLATE = TEMPLATES + "/{template_id}"
VERSION = TEMPLATE + "/versions/{version_id}"


def setup_template_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(TEMPLATES, _handler(lambda lib, m, body: (201, lib.create(body))))
    router.add_get(TEMPLATES, _handler(lambda lib, m, body, q: (200, lib.page(q)), query=True))
    router.add_get(TEMPLATE, _handler(lambda lib, m, body: (200, lib.get(m["template_id"]))))
    router.add_patch(
        TEMPLATE, _handler(lambda lib, m, body: (200, lib.rename(m["template_id"], body)))
    )
    router.add_delete(TEMPLATE, _handler(lambda lib, m, body: (204, lib.delete(m["template_id"]))))
    router.add_post(
        TEMPLATE + "/versions",
        _handler(lambda lib, m, body: (201, lib.add_version(m["template_id"], body))),
    )
    router.add_get(VERSION, _handler(
        lambda lib, m, body: (200, lib.version(m["template_id"], m["version_id"]))))  # fmt: skip
    router.add_patch(VERSION, _handler(
        lambda lib, m, body: (200, lib.update_version(m["template_id"], m["version_id"], body))))  # fmt: skip
    router.add_delete(VERSION, _handler(
        lambda lib, m, body: (204, lib.delete_version(m["template_id"], m["version_id"]))))  # fmt: skip
    router.add_post(VERSION + "/activate", _handler(
        lambda lib, m, body: (200, lib.activate(m["template_id"], m["version_id"]))))  # fmt: skip


def _handler(action: Callable[..., tuple[int, Any]], *, query: bool = False):
    """A route: the API key checked, the JSON body read, ``action`` run on the library;
    its ``TemplateError`` answered as SendGrid answers errors."""

    async def handle(request: web.Request) -> web.Response:
        if (refused := denied(request)) is not None:
            return refused
        try:
            body = await _body(request)
            library: TemplateLibrary = request.app[SANDBOX].sendgrid_templates
            match = request.match_info
            args = (library, match, body, request.query) if query else (library, match, body)
            status, result = action(*args)
        except TemplateError as exc:
            return errors(exc.status, exc.errors)
        if status == 204:
            return web.Response(status=204)
        return web.json_response(result, status=status)

    return handle


async def _body(request: web.Request) -> dict[str, Any]:
    if request.method in ("GET", "DELETE") or not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise TemplateError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise TemplateError(400, "the body must be a JSON object")
    return body
