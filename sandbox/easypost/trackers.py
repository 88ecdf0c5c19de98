"""The sandbox's EasyPost trackers on the sandbox clock: a bought label's tracker moves
pre_transit → in_transit → out_for_delivery → delivered, one status per step and one
``tracker.updated`` event per move; the first move comes a full step after the
purchase, so its answer is out before any tracker event. The control API may put a
tracker in any status (``STATUSES``); a delivered or off-course tracker, and one whose
label is being refunded, moves no more.

The trackers the clock still moves are kept in a heap by the time of their next move,
so a tick costs what is due, not every tracker ever bought."""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.easypost.times import Times
from sandbox.easypost.wire import failure
from sandbox.store import Store
from sandbox.wire import iso, new_id

#: Tracker statuses in the order the clock moves them.
PROGRESSION = ("pre_transit", "in_transit", "out_for_delivery", "delivered")
#: Every status the control API may put a tracker in, with its detail and message.
STATUSES: Mapping[str, tuple[str, str]] = {
    "unknown": ("unknown", "Awaiting carrier information"),
    "pre_transit": ("label_created", "Shipping Label Created"),
    "in_transit": ("arrived_at_facility", "Arrived at Facility"),
    "out_for_delivery": ("out_for_delivery", "Out for Delivery"),
    "delivered": ("arrived_at_destination", "Delivered"),
    "available_for_pickup": ("available_for_pickup", "Available for Pickup"),
    "return_to_sender": ("return", "Returned to Sender"),
    "failure": ("delivery_failure", "Delivery Attempt Failed"),
    "cancelled": ("cancelled", "Shipment Cancelled"),
    "error": ("unknown", "Tracking Error"),
}

Emit = Callable[[dict[str, Any]], None]


class TrackerClock:
    """Starts the trackers of bought labels and moves them as the clock passes."""

    def __init__(
        self,
        trackers: dict[str, dict[str, Any]],
        shipments: dict[str, dict[str, Any]],
        *,
        emit: Emit,
        clock: Callable[[], float],
        step_seconds: float,
        store: Store,
        times: Times,
        holds: Callable[[dict[str, Any]], bool],
    ) -> None:
        self._trackers = trackers
        self._shipments = shipments
        #: (time of the next move, tie-breaker, tracker id); an entry whose time is not the
        #: tracker's in ``_next_move`` any more is stale and skipped.
        self._due: list[tuple[float, int, str]] = []
        self._next_move: dict[str, float] = {}
        self._order = itertools.count()
        self._emit = emit
        self._clock = clock
        self._step = step_seconds
        self._store = store
        self._times = times
        #: Whether a tracker's label is being refunded (it then stops moving).
        self._holds = holds

    def advance(self, now: float) -> None:
        """Move every tracker the clock has passed, one status at a time."""
        while self._due and self._due[0][0] <= now:
            when, _, tracker_id = heapq.heappop(self._due)
            if self._next_move.get(tracker_id) == when:
                del self._next_move[tracker_id]
                self._catch_up(self._trackers[tracker_id], now)

    def next_move_at(self) -> float | None:
        """When the clock next moves a tracker (sandbox time), None if it moves none."""
        while self._due and self._next_move.get(self._due[0][2]) != self._due[0][0]:
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    @property
    def in_motion(self) -> int:
        """How many trackers the clock will still move."""
        return len(self._next_move)

    def set_status(self, tracker: dict[str, Any], status: str) -> dict[str, Any]:
        """Control API: put the tracker in ``status`` (any of ``STATUSES``)."""
        if status not in STATUSES:
            raise failure(422, "PARAMETER.INVALID", message=f"unknown tracker status {status!r}")
        if status != tracker["status"]:
            self._move(tracker, status)
            self.schedule(tracker)
        return tracker

    def start(self, shipment: dict[str, Any], *, origin: str) -> dict[str, Any]:
        rate, now = shipment["selected_rate"], self._clock()
        tracker_id = new_id("trk", 32)
        tracker = {
            "id": tracker_id,
            "object": "Tracker",
            "mode": "test",
            "tracking_code": shipment["tracking_code"],
            "status": "pre_transit",
            "status_detail": STATUSES["pre_transit"][0],
            "signed_by": None,
            "weight": None,
            "est_delivery_date": iso(now + 86400 * rate["delivery_days"]),
            "shipment_id": shipment["id"],
            "carrier": rate["carrier"],
            "carrier_detail": {"object": "CarrierDetail", "service": rate["service"]},
            "tracking_details": [_detail("pre_transit", now)],
            "public_url": f"{origin}/easypost/track/{shipment['tracking_code']}",
            "fees": [],
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        self._trackers[tracker_id] = tracker
        self._times.created_now(tracker_id, started=now)
        self._store.put("tracker", tracker_id, tracker)
        self.schedule(tracker)
        return tracker

    def _catch_up(self, tracker: dict[str, Any], now: float) -> None:
        """Every move due by ``now``: move k is due k steps after the tracker started."""
        started = self._times.started[tracker["id"]]
        while tracker["status"] in PROGRESSION[:-1]:
            reached = PROGRESSION.index(tracker["status"])
            if started + (reached + 1) * self._step > now:
                break
            self._move(tracker, PROGRESSION[reached + 1])
        self.schedule(tracker)

    def schedule(self, tracker: dict[str, Any]) -> None:
        """Put the tracker's next move on the clock, or take it off: a stopped clock, and
        a delivered or off-course tracker (the control API's statuses), move nothing."""
        tracker_id, status = tracker["id"], tracker["status"]
        if self._step <= 0 or status not in PROGRESSION[:-1] or self._holds(tracker):
            self._next_move.pop(tracker_id, None)
            return
        when = self._times.started[tracker_id] + (PROGRESSION.index(status) + 1) * self._step
        if self._next_move.get(tracker_id) != when:
            self._next_move[tracker_id] = when
            heapq.heappush(self._due, (when, next(self._order), tracker_id))

    def _move(self, tracker: dict[str, Any], status: str) -> None:
        now, previous = self._clock(), tracker["status"]
        tracker.update(status=status, status_detail=STATUSES[status][0], updated_at=iso(now))
        tracker["tracking_details"].append(_detail(status, now))
        shipment = self._shipments.get(tracker["shipment_id"])
        self._store.put("tracker", tracker["id"], tracker)
        if shipment is not None:
            shipment["status"] = status
            shipment["tracker"] = tracker
            self._store.put("shipment", shipment["id"], shipment)
        self._emit(
            {
                "object": "Event",
                "id": new_id("evt", 32),
                "mode": "test",
                "description": "tracker.updated",
                "previous_attributes": {"status": previous},
                "result": copy.deepcopy(tracker),
                "status": "pending",
                "pending_urls": [],
                "completed_urls": [],
                "user_id": "user_sandbox",
                "created_at": iso(now),
                "updated_at": iso(now),
            }
        )


def _detail(status: str, when: float) -> dict[str, Any]:
    detail, message = STATUSES[status]
    return {
        "object": "TrackingDetail",
        "status": status,
        "status_detail": detail,
        "message": message,
        "datetime": iso(when),
        "source": "sandbox",
        "tracking_location": {
            "object": "TrackingLocation",
            "city": "San Francisco",
            "state": "CA",
            "country": "US",
            "zip": "94104",
        },
    }
