"""The merchant's side of an outbound webhook, for the bench: an aiohttp server that
takes every POST and answers 204 at once, as a receiver that queues what it gets would.
It is the merchant's process, not the product's: its CPU is not counted."""

from __future__ import annotations

import sys

from aiohttp import web

#: The path the bench's endpoint is registered at.
PATH = "/fulfillment-events"


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_post(PATH, receive)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
