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
from sqlalchemy.dialects.postgresql import insert

from api.context import SESSIONS, SETTINGS
from api.errors import ApiError
from api.jsonio import respond_data
from fulfillment.messages import PROCESS_WEBHOOK
from fulfillment.models import WebhookEvent
from fulfillment.outbox import outbox_insert
from integrations.errors import InvalidSignature
from integrations.webhooks import verify_easypost_webhook, verify_stripe_webhook
from monitoring import metrics


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
    return await _store(request, "stripe", event, order_id)


async def easypost_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    secret = request.app[SETTINGS].easypost_webhook_secret.get_secret_value()
    try:
        event = verify_easypost_webhook(payload, request.headers, secret)
    except InvalidSignature as exc:
        metrics.webhooks_total.labels("easypost", "invalid_signature").inc()
        raise ApiError(400, "invalid_signature", str(exc)) from None
    return await _store(request, "easypost", event, None)


async def _store(
    request: web.Request, provider: str, event, order_id: uuid.UUID | None
) -> web.Response:
    if not event.id or not event.type:
        metrics.webhooks_total.labels(provider, "rejected").inc()
        raise ApiError(400, "invalid_event", "the event has no id or type")
    body = await request.json()
    async with request.app[SESSIONS]() as session, session.begin():
        stored_id = await session.scalar(
            insert(WebhookEvent)
            .values(provider=provider, event_id=event.id, event_type=event.type,
                    order_id=order_id, payload=body)
            .on_conflict_do_nothing(constraint="uq_webhook_events_provider_event")
            .returning(WebhookEvent.id)
        )  # fmt: skip
        if stored_id is not None:
            await session.execute(outbox_insert(PROCESS_WEBHOOK, event_id=str(stored_id)))
    outcome = "accepted" if stored_id is not None else "duplicate"
    metrics.webhooks_total.labels(provider, outcome).inc()
    return respond_data({"received": True, "duplicate": stored_id is None})
