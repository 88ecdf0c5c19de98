"""What a stored provider webhook means for its order, for the events the API could not
settle in the statement that stored them (``api.intake.providers``): a payment an order waits
on, a parcel that will not arrive, and events the sweeper found unprocessed. The same
event processed twice has one effect, and out-of-order events never move an order back
(the steps decide, under a lock)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select, update

from fulfillment.models import Shipment, WebhookEvent
from fulfillment.states import OrderStatus as S
from integrations.stripe_events import PAYMENT_EVENTS, REFUND_EVENTS
from pipelines.common import SKIPPED, begin, entered_here, reading
from pipelines.deps import Deps
from pipelines.outcome import FAILED
from pipelines.payments.capture import capture_payment
from pipelines.payments.payment import settle_payment
from pipelines.payments.refunds import refund_changed
from pipelines.shipping.early_trackers import tracker_status
from pipelines.shipping.ship import ship_order
from pipelines.shipping.tracking import apply_tracking

#: How long a tracker event whose shipment is not stored is kept waiting for it (the
#: commit that stores the shipment applies it); after that it is set aside, and the
#: sweeper's tracker polling still catches the order up.
UNKNOWN_TRACKER_PATIENCE = timedelta(minutes=10)

#: The stored event, if it still waits to be processed.
_UNPROCESSED = select(
    WebhookEvent.provider,
    WebhookEvent.event_type,
    WebhookEvent.payload,
    WebhookEvent.order_id,
    WebhookEvent.received_at,
).where(WebhookEvent.id == bindparam("event_id"), WebhookEvent.processed_at.is_(None))


def process_webhook(deps: Deps, event_id: str, *, attempt: int = 1) -> str:
    with reading(deps) as session:
        event = session.execute(_UNPROCESSED, {"event_id": int(event_id)}).first()
        if event is None:
            return SKIPPED
        provider, kind, payload, order_id, received_at = event
        if provider == "easypost" and order_id is None:
            order_id = _order_of_tracker(session, payload)
    outcome = SKIPPED
    if order_id is not None and provider == "stripe" and kind in REFUND_EVENTS:
        refund = (payload.get("data") or {}).get("object") or {}
        if isinstance(refund.get("id"), str):
            outcome = refund_changed(deps, str(order_id), refund["id"], attempt=attempt)
    elif order_id is not None and provider == "stripe" and kind in PAYMENT_EVENTS:
        outcome = settle_payment(deps, str(order_id), attempt=attempt)
        if outcome != FAILED and entered_here(order_id, S.FULFILLING):
            outcome = ship_order(deps, str(order_id), attempt=attempt)  # paid: the label
            if outcome != FAILED:
                capture_payment(deps, str(order_id), attempt=attempt)
    elif provider == "easypost" and kind == "tracker.updated":
        if order_id is None and deps.now() - received_at < UNKNOWN_TRACKER_PATIENCE:
            return SKIPPED  # its shipment's commit applies it; the sweeper asks again
        if order_id is not None:
            status = tracker_status(payload).value
            code = (payload.get("result") or {}).get("tracking_code")
            outcome = apply_tracking(deps, str(order_id), status=status, attempt=attempt,
                                     code=code if isinstance(code, str) else None)  # fmt: skip
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
    # as the intake chooses (api.intake.providers): the shipment the tracker names, else the
    # newest with its code (carriers reuse codes)
    named = Shipment.shipment_id == str(result.get("shipment_id"))
    return session.scalar(
        select(Shipment.order_id).where(Shipment.tracking_code == code)
        .order_by(named.desc(), Shipment.created_at.desc()).limit(1)
    )  # fmt: skip
