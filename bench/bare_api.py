"""The bare-stack baseline for ``POST /v1/orders``: aiohttp parsing the same JSON body and
answering 201, with no auth, validation or database."""

from __future__ import annotations

import json
import sys
import uuid

from aiohttp import web


async def create_order(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    return web.json_response({"id": str(uuid.uuid4()), "items": body["items"]}, status=201)


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/orders", create_order)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
