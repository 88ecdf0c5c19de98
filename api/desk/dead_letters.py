"""Operator endpoints: dead letters, inspected and redriven."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from api.desk.schemas import DeadLetterOut, DeadLetterPage, DeadLetterQuery, DeadLetterReplayed
from api.shared.context import DEAD_LETTERS, SETTINGS
from api.shared.errors import not_found
from api.shared.jsonio import respond
from api.shared.paging import query_model
from workers.broker import create_broker
from workers.dead_letters import DeadLetters


async def dead_letters_ctx(app: web.Application) -> AsyncIterator[None]:
    """A broker client for the dead-letter queues, built when the app starts."""
    broker = create_broker(app[SETTINGS])
    app[DEAD_LETTERS] = DeadLetters(broker) if hasattr(broker, "client") else None
    yield
    broker.close()


def _store(request: web.Request) -> DeadLetters:
    store = request.app[DEAD_LETTERS]
    if store is None:
        raise web.HTTPNotImplemented(reason="dead-letter tooling needs the Redis broker")
    return store


async def list_dead_letters(request: web.Request) -> web.Response:
    query = query_model(request, DeadLetterQuery)
    letters = await asyncio.to_thread(_store(request).list, queue=query.queue)
    items = [DeadLetterOut.model_validate(letter.as_dict()) for letter in letters]
    return respond(DeadLetterPage(items=items, total=len(items)))


async def replay_dead_letter(request: web.Request) -> web.Response:
    letter = await asyncio.to_thread(_store(request).replay, request.match_info["letter_id"])
    if letter is None:
        raise not_found("dead letter")
    return respond(DeadLetterReplayed(replayed=DeadLetterOut.model_validate(letter.as_dict())))
