"""Label refunds (voids) for the sandbox: ``POST /v2/shipments/{id}/refund``, as EasyPost
documents it ("Shipping Refund"). The request sets the shipment's ``refund_status``;
the sandbox clock (``POST /_sandbox/clock``, or time passing) settles it
``REFUND_SETTLE_SECONDS`` later:

- ``submitted`` at once, for a bought label; it settles to ``refunded``;
- ``rejected`` when the carrier has scanned the label: its tracker was past
  ``pre_transit`` when the refund was asked for or when it settles, or the control API
  said so (``POST /_sandbox/shipments/{id}/refund_outcome {"outcome": "rejected"}``);
  asking again re-submits it, as EasyPost allows for a rejected refund;
- ``not_applicable`` at once for a return label (``is_return``): billed on scan, so
  there is nothing to give back, and asking again changes nothing;
- asking again while ``submitted`` or once ``refunded`` answers the shipment as it
  stands (EasyPost documents no error for it; the sandbox keeps the first request);
- a shipment with no label is ``422 SHIPMENT.REFUND.UNAVAILABLE``.

A label being refunded is never handed to the carrier: its tracker stops moving.
EasyPost documents no refund webhook event, so none is posted; clients follow
``refund_status`` by reading the shipment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sandbox.easypost.wire import failure
from sandbox.store import Store
from sandbox.wire import iso

#: Sandbox seconds from a refund request to its settlement.
REFUND_SETTLE_SECONDS = 60.0
#: Outcomes the control API may force on a submitted refund.
OUTCOMES = ("refunded", "rejected")
#: Tracker statuses of a label the carrier has not scanned yet.
UNSCANNED = ("unknown", "pre_transit")


class RefundDesk:
    def __init__(
        self,
        shipments: dict[str, dict[str, Any]],
        trackers: dict[str, dict[str, Any]],
        *,
        clock: Callable[[], float],
        store: Store,
    ) -> None:
        self._shipments = shipments
        self._trackers = trackers
        self._clock = clock
        self._store = store
        #: Per shipment with a refund under way: when it was asked for (sandbox time)
        #: and the outcome the control API forced, if any.
        self._pending: dict[str, dict[str, Any]] = {
            shipment_id: pending
            for shipment_id, pending in store.load("refund").items()
            if shipments.get(shipment_id, {}).get("refund_status") == "submitted"
        }

    def request(self, shipment: dict[str, Any]) -> dict[str, Any]:
        if shipment.get("postage_label") is None:
            raise failure(422, "SHIPMENT.REFUND.UNAVAILABLE",
                          message="The shipment has no postage to refund.")  # fmt: skip
        status = shipment.get("refund_status")
        if status in ("submitted", "refunded", "not_applicable"):
            return shipment
        if shipment.get("is_return"):
            return self._set(shipment, "not_applicable")
        pending = {"requested": self._clock(), "outcome": None,
                   "scanned": not self._unscanned(shipment)}  # fmt: skip
        self._pending[shipment["id"]] = pending
        self._store.put("refund", shipment["id"], pending)
        return self._set(shipment, "submitted")

    def force(self, shipment: dict[str, Any], outcome: str) -> dict[str, Any]:
        if outcome not in OUTCOMES:
            raise failure(422, "PARAMETER.INVALID", message=f"outcome must be one of {OUTCOMES}")
        pending = self._pending.get(shipment["id"])
        if pending is None:
            raise failure(422, "SHIPMENT.REFUND.UNAVAILABLE",
                          message="The shipment has no refund under way.")  # fmt: skip
        pending["outcome"] = outcome
        self._store.put("refund", shipment["id"], pending)
        return shipment

    def settle_due(self) -> None:
        """Settle every refund whose time has come."""
        now = self._clock()
        for shipment_id, pending in list(self._pending.items()):
            if pending["requested"] + REFUND_SETTLE_SECONDS > now:
                continue
            shipment = self._shipments[shipment_id]
            rejected = pending["scanned"] or not self._unscanned(shipment)
            outcome = pending["outcome"] or ("rejected" if rejected else "refunded")
            del self._pending[shipment_id]
            self._store.delete("refund", shipment_id)
            self._set(shipment, outcome)

    def holds(self, tracker: dict[str, Any]) -> bool:
        """True for the tracker of a label being (or already) refunded: never scanned."""
        shipment = self._shipments.get(tracker.get("shipment_id") or "")
        return shipment is not None and shipment.get("refund_status") in ("submitted", "refunded")

    def _unscanned(self, shipment: dict[str, Any]) -> bool:
        tracker = shipment.get("tracker") or {}
        current = self._trackers.get(tracker.get("id") or "", tracker)
        return current.get("status", "unknown") in UNSCANNED

    def _set(self, shipment: dict[str, Any], status: str) -> dict[str, Any]:
        shipment.update(refund_status=status, updated_at=iso(time.time()))
        self._store.put("shipment", shipment["id"], shipment)
        return shipment
