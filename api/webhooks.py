"""Provider webhooks: verify the signature with the SDK, store the event once per
(provider, event id), hand it to the pipelines through the outbox, answer at once.

A bad or stale signature is a 400 and stores nothing; a duplicate is a 200 with no
second effect. Whether the event moves an order is the pipelines' decision, under a
row lock and the forward-only rule, so out-of-order deliveries cannot regress it.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from api.context import ENGINE, SETTINGS
from api.errors import ApiError
from api.jsonio import respond_data
from api.rawdb import raw_connection
from fulfillment.messages import PROCESS_WEBHOOK
from fulfillment.outbox import current_request_id
from integrations.errors import InvalidSignature
from integrations.webhooks import verify_easypost_webhook, verify_stripe_webhook
from monitoring import metrics

#: Store the event once, and its outbox message with it, in one statement.
STORE = """
    WITH stored AS (
        INSERT INTO webhook_events (provider, event_id, event_type, order_id, payload)
        VALUES (%(provider)s, %(event_id)s, %(event_type)s, %(order_id)s, %(payload)s::jsonb)
        ON CONFLICT ON CONSTRAINT uq_webhook_events_provider_event DO NOTHING
        RETURNING id
    ), message AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        SELECT %(queue)s, %(actor)s, jsonb_build_object('event_id', stored.id::text),
               %(request_id)s
        FROM stored
    )
    SELECT id FROM stored
"""


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def stripe_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    secret = request.app[SETTINGS].stripe_webhook_secret.get_secret_value()
    try:
        event = verify_stripe_webhook(payload, request.headers.get("Stripe-Signature"), secret)
    except InvalidSignature as exc:
        metrics.webhooks_total.labels("stripe", "invalid_signature").inc()
        raise ApiError(400, "invalid_signature", str(exc)) from None
    order_id = _uuid_or_none((event.data.get("metadata") or {}).get("order_id"))
    return await _store(request, "stripe", event, order_id, payload)


async def easypost_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    secret = request.app[SETTINGS].easypost_webhook_secret.get_secret_value()
    try:
        event = verify_easypost_webhook(payload, request.headers, secret)
    except InvalidSignature as exc:
        metrics.webhooks_total.labels("easypost", "invalid_signature").inc()
        raise ApiError(400, "invalid_signature", str(exc)) from None
    return await _store(request, "easypost", event, None, payload)


async def _store(
    request: web.Request, provider: str, event, order_id: uuid.UUID | None, payload: bytes
) -> web.Response:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        text = None
    if not event.id or not event.type or len(event.id) > 255 or len(event.type) > 64 or not text:
        metrics.webhooks_total.labels(provider, "rejected").inc()
        raise ApiError(400, "invalid_event", "the event has no id or type, or is not UTF-8 JSON")
    params = {
        "provider": provider, "event_id": event.id, "event_type": event.type,
        "order_id": order_id, "payload": text, "queue": PROCESS_WEBHOOK[1],
        "actor": PROCESS_WEBHOOK[0], "request_id": current_request_id(),
    }  # fmt: skip
    async with raw_connection(request.app[ENGINE]) as conn:
        stored = await (await conn.execute(STORE, params, prepare=True)).fetchone()
        await conn.commit()
    outcome = "accepted" if stored is not None else "duplicate"
    metrics.webhooks_total.labels(provider, outcome).inc()
    return respond_data({"received": True, "duplicate": stored is None})
