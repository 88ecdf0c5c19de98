"""Provider webhooks as Stripe and EasyPost send them (signed events, posted to the real
API) and what the API stored and counted of them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import unicodedata
import uuid
from collections import Counter

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fulfillment.models import OutboxMessage, WebhookEvent
from fulfillment.settings import Settings


def stripe_headers(payload: bytes, secret: str, *, at: int | None = None) -> dict[str, str]:
    """``Stripe-Signature`` as Stripe documents it: t=…,v1=HMAC-SHA256(secret, "t.payload")."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return {"Stripe-Signature": f"t={stamp},v1={digest.hexdigest()}",
            "Content-Type": "application/json"}  # fmt: skip


def easypost_headers(payload: bytes, secret: str) -> dict[str, str]:
    """``X-Hmac-Signature`` as EasyPost signs: hex HMAC-SHA256 of the body, NFKD key."""
    key = unicodedata.normalize("NFKD", secret).encode()
    digest = hmac.new(key, payload, hashlib.sha256).hexdigest()
    return {"X-Hmac-Signature": f"hmac-sha256-hex={digest}", "Content-Type": "application/json"}


def stripe_event(kind: str, *, order_id: str, intent_id: str = "pi_1") -> bytes:
    intent = {"id": intent_id, "object": "payment_intent", "status": "succeeded",
              "metadata": {"order_id": order_id}}  # fmt: skip
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
             "created": int(time.time()), "data": {"object": intent}}  # fmt: skip
    return json.dumps(event).encode()


def tracker_event(*, tracking_code: str, tracker_status: str) -> bytes:
    tracker = {"id": "trk_1", "object": "Tracker", "status": tracker_status,
               "tracking_code": tracking_code}  # fmt: skip
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "Event",
             "description": "tracker.updated", "result": tracker}  # fmt: skip
    return json.dumps(event).encode()


async def webhook_counts(client, provider: str) -> Counter[str]:
    body = generate_latest(REGISTRY).decode()  # the API's metrics, in this process
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if (sample.name == "fulfillment_webhooks_total"
                    and sample.labels["provider"] == provider):  # fmt: skip
                counts[sample.labels["outcome"]] = int(sample.value)
    return counts


def stored_events(engine: Engine, provider: str) -> list[WebhookEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(WebhookEvent).where(WebhookEvent.provider == provider)))


def queued_event_id(engine: Engine) -> str:
    with Session(engine) as session:
        rows = session.scalars(
            select(OutboxMessage.kwargs).where(OutboxMessage.actor_name == "process_webhook")
            .order_by(OutboxMessage.id.desc())
        ).all()  # fmt: skip
    return rows[0]["event_id"]


async def post_stripe(client, settings: Settings, kind: str, **event: str) -> None:
    payload = stripe_event(kind, **event)
    secret = settings.stripe_webhook_secret.get_secret_value()
    response = await client.post(
        "/v1/webhooks/stripe", data=payload, headers=stripe_headers(payload, secret)
    )
    assert (response.status, await response.json()) == (
        200, {"received": True, "duplicate": False})  # fmt: skip


async def post_tracker(client, settings: Settings, code: str, tracker_status: str) -> None:
    payload = tracker_event(tracking_code=code, tracker_status=tracker_status)
    secret = settings.easypost_webhook_secret.get_secret_value()
    response = await client.post(
        "/v1/webhooks/easypost", data=payload, headers=easypost_headers(payload, secret)
    )
    assert (response.status, await response.json()) == (
        200, {"received": True, "duplicate": False})  # fmt: skip
