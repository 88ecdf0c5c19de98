"""EasyPost's shipments, labels, trackers, addresses and label refunds in memory. Buying
a label starts a tracker that the sandbox clock moves pre_transit → in_transit →
out_for_delivery → delivered, one status per step and one ``tracker.updated`` event per
move; the first move comes a full step after the purchase, so its answer is out before
any tracker event. Addresses are verified as ``easypost_addresses`` describes; label
refunds (voids) settle on the same clock, as ``easypost_refunds`` describes.

The clock keeps the trackers it still moves in a heap by the time of their next move, so
a tick costs what is due, not every tracker ever bought."""

from __future__ import annotations

import copy
import heapq
import itertools
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.easypost import addresses as avs
from sandbox.easypost.refunds import RefundDesk
from sandbox.easypost.wire import (
    ADDRESS_FIELDS,
    address,
    failure,
    page,
    parcel,
    postage_label,
    rates_for,
)
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


class EasyPostLedger:
    def __init__(
        self,
        emit: Emit,
        *,
        clock: Callable[[], float],
        step_seconds: float,
        store: Store | None = None,
    ) -> None:
        self._store = store or Store()
        self.shipments: dict[str, dict[str, Any]] = self._store.load("shipment")
        self.trackers: dict[str, dict[str, Any]] = self._store.load("tracker")
        self.addresses: dict[str, dict[str, Any]] = self._store.load("address")
        #: When each object was created (wall time), and each tracker started (sandbox
        #: time): kept beside them as ``times``.
        times = self._store.load("times")
        self._created: dict[str, float] = {k: t["created"] for k, t in times.items()}
        self._started: dict[str, float] = {
            k: t["started"] for k, t in times.items() if "started" in t
        }
        #: (time of the next move, tie-breaker, tracker id); an entry whose time is not the
        #: tracker's in ``_next_move`` any more is stale and skipped.
        self._due: list[tuple[float, int, str]] = []
        self._next_move: dict[str, float] = {}
        self._order = itertools.count()
        self._emit = emit
        self._clock = clock
        self._step = step_seconds
        for shipment in self.shipments.values():  # one tracker object, as before
            if shipment["tracker"] is not None:
                shipment["tracker"] = self.trackers[shipment["tracker"]["id"]]
        self.refunds = RefundDesk(self.shipments, self.trackers, clock=clock, store=self._store)
        for tracker in self.trackers.values():  # back on the clock after a restart
            self._schedule(tracker)

    def create_shipment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        params = body.get("shipment")
        if not isinstance(params, Mapping):
            raise failure(
                422, "PARAMETER.REQUIRED", message="Missing required parameter: shipment."
            )
        shipment_id = new_id("shp", 32)
        stamp = iso(time.time())
        shipment = {
            "id": shipment_id,
            "object": "Shipment",
            "mode": "test",
            "reference": params.get("reference"),
            "to_address": self._shipment_address(params.get("to_address"), "to_address"),
            "from_address": self._shipment_address(params.get("from_address"), "from_address"),
            "parcel": parcel(params.get("parcel")),
            "options": dict(params.get("options") or {}),
            "is_return": bool(params.get("is_return", False)),
            "messages": [],
            "status": "unknown",
            "tracking_code": None,
            "selected_rate": None,
            "postage_label": None,
            "tracker": None,
            "refund_status": None,
            "fees": [],
            "created_at": stamp,
            "updated_at": stamp,
        }
        shipment["return_address"] = shipment["buyer_address"] = shipment["from_address"]
        shipment["rates"] = rates_for(shipment)
        self.shipments[shipment_id] = shipment
        self._created[shipment_id] = time.time()
        self._keep_times(shipment_id)
        self._store.put("shipment", shipment_id, shipment)
        return shipment

    def buy(self, shipment_id: str, body: Mapping[str, Any], *, origin: str) -> dict[str, Any]:
        shipment = self.shipment(shipment_id)
        chosen = body.get("rate")
        rate_id = chosen.get("id") if isinstance(chosen, Mapping) else None
        if not rate_id:
            blank = [{"field": "rate", "message": "cannot be blank"}]
            raise failure(
                422, "PARAMETER.REQUIRED", message="Missing required parameter: rate.", errors=blank
            )
        if shipment["postage_label"] is not None:
            message = "Postage already exists for this shipment."
            raise failure(422, "SHIPMENT.POSTAGE.EXISTS", message=message)
        rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if rate is None:
            message = "The rate is not valid for this shipment."
            raise failure(422, "SHIPMENT.RATE.INVALID", message=message)
        shipment.update(
            selected_rate=rate,
            tracking_code="9400" + str(uuid.uuid4().int)[:18],
            postage_label=postage_label(origin),
            updated_at=iso(time.time()),
        )
        shipment["tracker"] = self._start_tracker(shipment, origin=origin)
        shipment["status"] = shipment["tracker"]["status"]
        self._store.put("shipment", shipment_id, shipment)
        return shipment

    def shipment(self, shipment_id: str) -> dict[str, Any]:
        if shipment_id not in self.shipments:
            raise failure(404, "NOT_FOUND", message="The requested resource could not be found.")
        self.refunds.settle_due()
        return self.shipments[shipment_id]

    def tracker(self, tracker_id: str) -> dict[str, Any]:
        self.tick()
        if tracker_id not in self.trackers:
            raise failure(404, "NOT_FOUND", message="The requested resource could not be found.")
        return self.trackers[tracker_id]

    # --- addresses ----------------------------------------------------------------------

    def create_address(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /addresses``: with ``verify`` the Address carries its verifications
        (corrected when deliverable); with ``verify_strict`` an undeliverable one is a
        422 ``ADDRESS.VERIFY.FAILURE``."""
        raw = body.get("address") if isinstance(body.get("address"), Mapping) else {}
        strict = avs.wants_verification(body, "verify_strict")
        if strict or avs.wants_verification(body, "verify"):
            return self._keep_address(self._verified(raw, strict=strict))
        return self._keep_address(_address_object(_address_values(raw), {}))

    def create_and_verify(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /addresses/create_and_verify``: strict, answered as ``{"address": …}``."""
        raw = body.get("address") if isinstance(body.get("address"), Mapping) else {}
        return {"address": self._keep_address(self._verified(raw, strict=True))}

    def verify_address(self, address_id: str) -> dict[str, Any]:
        """``GET /addresses/{id}/verify``: strict, answered as ``{"address": …}``."""
        stored = self.address(address_id)
        return {"address": self._keep_address(self._verified(stored, strict=True))}

    def address(self, address_id: str) -> dict[str, Any]:
        if address_id not in self.addresses:
            raise failure(404, "NOT_FOUND", message="The requested resource could not be found.")
        return self.addresses[address_id]

    def _verified(self, raw: Mapping[str, Any], *, strict: bool) -> dict[str, Any]:
        corrected, verifications = avs.verify(_address_values(raw))
        errors = avs.strict_failure_errors(verifications)
        if strict and errors is not None:
            raise failure(422, "ADDRESS.VERIFY.FAILURE", message="Unable to verify address.",
                          errors=errors)  # fmt: skip
        return _address_object(corrected, verifications)

    def _keep_address(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.addresses[obj["id"]] = obj
        self._created[obj["id"]] = time.time()
        self._keep_times(obj["id"])
        self._store.put("address", obj["id"], obj)
        return obj

    def _shipment_address(self, raw: Any, field: str) -> dict[str, Any]:
        """A shipment's address: one created before (``{"id": "adr_…"}``), or new; with
        ``verify_strict`` in it an undeliverable one is refused, with ``verify`` it
        carries its verifications."""
        if isinstance(raw, Mapping) and raw.get("id") in self.addresses:
            return copy.deepcopy(self.addresses[raw["id"]])
        stored = address(raw, field)
        raw = raw if isinstance(raw, Mapping) else {}
        strict = avs.wants_verification(raw, "verify_strict")
        if strict or avs.wants_verification(raw, "verify"):
            verified = self._verified(stored, strict=strict)
            stored.update(
                {k: verified[k] for k in avs_fields()}, verifications=verified["verifications"]
            )
        return stored

    # --- label refunds (voids) --------------------------------------------------------

    def refund(self, shipment_id: str) -> dict[str, Any]:
        """``POST /shipments/{id}/refund``."""
        self.tick()
        shipment = self.refunds.request(self.shipment(shipment_id))
        tracker = shipment.get("tracker")
        if tracker is not None:
            self._schedule(tracker)  # a label being voided is not handed to the carrier
        return shipment

    def set_refund_outcome(self, shipment_id: str, outcome: str) -> dict[str, Any]:
        """Control API: how the shipment's refund settles (``rejected``, ``refunded``)."""
        return self.refunds.force(self.shipment(shipment_id), outcome)

    def list_shipments(self, query: Mapping[str, str]) -> dict[str, Any]:
        self.tick()
        items = list(self.shipments.values())
        purchased = str(query.get("purchased", "")).lower()
        if purchased in ("true", "false"):
            bought = purchased == "true"
            items = [s for s in items if (s["postage_label"] is not None) == bought]
        return page(items, query, key="shipments", created=self._created)

    def list_trackers(self, query: Mapping[str, str]) -> dict[str, Any]:
        self.tick()
        items = [
            t
            for t in self.trackers.values()
            if query.get("tracking_code") in (None, t["tracking_code"])
            and query.get("carrier") in (None, t["carrier"])
        ]
        return page(items, query, key="trackers", created=self._created)

    def tick(self) -> None:
        """Move every tracker the clock has passed, one status at a time, and settle the
        label refunds that are due."""
        now = self._clock()
        self.refunds.settle_due()
        while self._due and self._due[0][0] <= now:
            when, _, tracker_id = heapq.heappop(self._due)
            if self._next_move.get(tracker_id) == when:
                del self._next_move[tracker_id]
                self._catch_up(self.trackers[tracker_id], now)

    def next_move_at(self) -> float | None:
        """When the clock next moves a tracker (sandbox time), None if it moves none."""
        while self._due and self._next_move.get(self._due[0][2]) != self._due[0][0]:
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    @property
    def in_motion(self) -> int:
        """How many trackers the clock will still move."""
        return len(self._next_move)

    def set_status(self, tracker_id: str, status: str) -> dict[str, Any]:
        tracker = self.tracker(tracker_id)
        if status not in STATUSES:
            raise failure(422, "PARAMETER.INVALID", message=f"unknown tracker status {status!r}")
        if status != tracker["status"]:
            self._move(tracker, status)
            self._schedule(tracker)
        return tracker

    def _start_tracker(self, shipment: dict[str, Any], *, origin: str) -> dict[str, Any]:
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
        self.trackers[tracker_id] = tracker
        self._created[tracker_id] = time.time()
        self._started[tracker_id] = now
        self._keep_times(tracker_id)
        self._store.put("tracker", tracker_id, tracker)
        self._schedule(tracker)
        return tracker

    def _catch_up(self, tracker: dict[str, Any], now: float) -> None:
        """Every move due by ``now``: move k is due k steps after the tracker started."""
        started = self._started[tracker["id"]]
        while tracker["status"] in PROGRESSION[:-1]:
            reached = PROGRESSION.index(tracker["status"])
            if started + (reached + 1) * self._step > now:
                break
            self._move(tracker, PROGRESSION[reached + 1])
        self._schedule(tracker)

    def _schedule(self, tracker: dict[str, Any]) -> None:
        """Put the tracker's next move on the clock, or take it off: a stopped clock, and
        a delivered or off-course tracker (the control API's statuses), move nothing."""
        tracker_id, status = tracker["id"], tracker["status"]
        if self._step <= 0 or status not in PROGRESSION[:-1] or self.refunds.holds(tracker):
            self._next_move.pop(tracker_id, None)
            return
        when = self._started[tracker_id] + (PROGRESSION.index(status) + 1) * self._step
        if self._next_move.get(tracker_id) != when:
            self._next_move[tracker_id] = when
            heapq.heappush(self._due, (when, next(self._order), tracker_id))

    def _keep_times(self, object_id: str) -> None:
        times = {"created": self._created[object_id]}
        if object_id in self._started:
            times["started"] = self._started[object_id]
        self._store.put("times", object_id, times)

    def _move(self, tracker: dict[str, Any], status: str) -> None:
        now, previous = self._clock(), tracker["status"]
        tracker.update(status=status, status_detail=STATUSES[status][0], updated_at=iso(now))
        tracker["tracking_details"].append(_detail(status, now))
        shipment = self.shipments.get(tracker["shipment_id"])
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


def avs_fields() -> tuple[str, ...]:
    """The fields a verification may correct."""
    return ("street1", "street2", "city", "state", "zip", "country")


def _address_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: raw.get(name) for name in ADDRESS_FIELDS}
    values["country"] = str(values["country"] or "US").upper()
    return values


def _address_object(values: Mapping[str, Any], verifications: dict[str, Any]) -> dict[str, Any]:
    stamp = iso(time.time())
    return {"id": new_id("adr", 32), "object": "Address", "mode": "test", **values,
            "residential": None, "verifications": verifications,
            "created_at": stamp, "updated_at": stamp}  # fmt: skip


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
