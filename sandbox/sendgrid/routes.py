"""SendGrid's HTTP surface under ``/sendgrid``: ``POST /v3/mail/send`` (202, empty body,
``X-Message-Id``; or 400 with every validation error) and ``GET /v3/messages``. Each
accepted mail's delivery events go to the event webhook (``sendgrid_events``)."""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.sendgrid.events import mail_events
from sandbox.sendgrid.http import PREFIX, denied, errors
from sandbox.sendgrid.mail import error, validate
from sandbox.sendgrid.template_routes import setup_template_routes
from sandbox.world import SANDBOX


def setup_sendgrid_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v3/mail/send", mail_send)
    app.router.add_get(f"{PREFIX}/v3/messages", messages)
    setup_template_routes(app)
    app.router.add_route("*", PREFIX + "/{tail:.*}", not_found)


async def mail_send(request: web.Request) -> web.Response:
    if (refused := denied(request)) is not None:
        return refused
    try:
        payload = json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        return errors(400, [error("Bad Request", None)])
    problems = validate(payload)
    if problems:
        return errors(400, problems)
    sandbox = request.app[SANDBOX]
    template_id = payload.get("template_id")  # well formed (validate); is there one?
    if template_id is not None and not sandbox.sendgrid_templates.knows(template_id):
        return errors(400, [error("The template_id is not a valid template ID.",
                                   "template_id", anchor="message.template_id")])  # fmt: skip
    message_id = sandbox.sendgrid.accept(payload)
    sandbox.webhooks.emit_sendgrid(mail_events(payload, message_id, now=sandbox.clock.now()))
    return web.Response(status=202, headers={"X-Message-Id": message_id})


async def messages(request: web.Request) -> web.Response:
    if (refused := denied(request)) is not None:
        return refused
    try:
        found = request.app[SANDBOX].sendgrid.search(request.query)
    except ValueError as exc:
        return errors(400, [error(f"invalid query: {exc}", "query")])
    return web.json_response({"messages": found})


async def not_found(request: web.Request) -> web.Response:
    return errors(404, [error("resource not found", None)])
