"""``/v1/openapi.json`` and ``/docs`` (Redoc rendering that description)."""

from __future__ import annotations

from aiohttp import web

from api.shared.context import OPENAPI

DOCS_HTML = """<!doctype html>
<html>
  <head>
    <title>Fulfillment API</title>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
  </head>
  <body>
    <redoc spec-url="/v1/openapi.json"></redoc>
    <script src="https://cdn.redoc.ly/redoc/v2.1.5/bundles/redoc.standalone.js"></script>
  </body>
</html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")
