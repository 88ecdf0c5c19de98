"""What a stored provider webhook means for its order. The API stores each event once
and queues ``process_webhook``; the same event processed twice has one effect, and
out-of-order events never move an order back (the steps decide, under a lock)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select, update

from fulfillment.models import Shipment, WebhookEvent
from pipelines.common import SKIPPED, begin
from pipelines.deps import Deps
from pipelines.payment import settle_payment
from pipelines.shipping import apply_tracking

#: Stripe events that change where a payment stands.
STRIPE_PAYMENT_EVENTS = frozenset(
    {"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
     "payment_intent.processing"}
)  # fmt: skip


#: How long a tracker event for a shipment not yet stored is retried before it is set
#: aside (the sweeper's tracker polling still catches the order up).
UNKNOWN_TRACKER_PATIENCE = timedelta(minutes=10)


class TrackerNotYetKnown(Exception):
    """A transient condition: Dramatiq retries the message with backoff."""


#: The stored event, if it still waits to be processed.
_UNPROCESSED = select(
    WebhookEvent.provider, WebhookEvent.event_type, WebhookEvent.payload, WebhookEvent.order_id
).where(WebhookEvent.id == bindparam("event_id"), WebhookEvent.processed_at.is_(None))


def process_webhook(deps: Deps, event_id: str, *, attempt: int = 1) -> str:
    with deps.sessions() as session:
        event = session.execute(_UNPROCESSED, {"event_id": int(event_id)}).first()
        if event is None:
            return SKIPPED
        provider, kind, payload, order_id = event
        if provider == "easypost" and order_id is None:
            order_id = _order_of_tracker(session, payload)
    outcome = SKIPPED
    if order_id is not None and provider == "stripe" and kind in STRIPE_PAYMENT_EVENTS:
        outcome = settle_payment(deps, str(order_id), attempt=attempt)
    elif order_id is not None and provider == "easypost" and kind == "tracker.updated":
        status = str(payload.get("result", {}).get("status", "unknown"))
        outcome = apply_tracking(deps, str(order_id), status=status, attempt=attempt)
    with begin(deps) as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == int(event_id), WebhookEvent.processed_at.is_(None))
            .values(processed_at=deps.now())
        )
    return outcome


def _order_of_tracker(session, payload: dict) -> str | None:
    result = payload.get("result") or {}
    code = result.get("tracking_code")
    if not code:
        return None
    return session.scalar(select(Shipment.order_id).where(Shipment.tracking_code == code))
