"""Tracker events that overtook the commit storing their tracking code (a shipment's
label, a return's label): they wait under the code, unprocessed, and that commit
claims them. Both sides hold the code's lock (``fulfillment.locks``) from before their
read to their commit, so an event is either seen here or sees the stored code."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from fulfillment.models import WebhookEvent
from integrations.ports import TrackerStatus
from pipelines import sql

#: Tracker events stored before their shipment was (they overtook its commit), in the
#: order they came; claimed by the transaction that stores the shipment, which holds
#: the code's lock (``fulfillment.locks``): none can be stored meanwhile.
_EARLY_TRACKERS = (
    select(WebhookEvent.id, WebhookEvent.payload)
    .where(WebhookEvent.provider == "easypost", WebhookEvent.processed_at.is_(None),
           WebhookEvent.tracking_code == bindparam("code"))
    .order_by(WebhookEvent.id).with_for_update()
)  # fmt: skip


def claim_early_trackers(session, code: str, order_id) -> list[TrackerStatus]:
    """Mark the events waiting under ``code`` processed, for ``order_id``; answers the
    statuses they reported, in the order they came."""
    early = sql.rows(session, _EARLY_TRACKERS, {"code": code})
    if early:
        session.execute(
            update(WebhookEvent).where(WebhookEvent.id.in_([row.id for row in early]))
            .values(processed_at=session.info["now"](), order_id=order_id)
        )  # fmt: skip
    return [tracker_status(payload) for _, payload in early]


def tracker_status(payload: dict) -> TrackerStatus:
    """The status a stored ``tracker.updated`` event reports."""
    try:
        return TrackerStatus(str((payload.get("result") or {}).get("status", "unknown")))
    except ValueError:
        return TrackerStatus.UNKNOWN
