"""EasyPost's shipments, labels, trackers, addresses and label refunds in memory, as the
sandbox's EasyPost routes ask for them. A label is bought from a shipment's rates
(``/buy``), or as the shipment is created (EasyPost's one-call buy: ``service`` with
``carrier`` or ``carrier_accounts``). Buying a label starts its tracker, which the
sandbox clock moves (``sandbox.easypost.trackers``); addresses are verified as
``sandbox.easypost.addresses`` describes; label refunds (voids) settle on the same
clock, as ``sandbox.easypost.refunds`` describes. Services the control API withdrew are
offered by no new shipment, until it puts them back or the sandbox is reset."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.easypost import addresses as avs
from sandbox.easypost.refunds import RefundDesk
from sandbox.easypost.times import Times
from sandbox.easypost.trackers import Emit, TrackerClock
from sandbox.easypost.wire import (
    ADDRESS_FIELDS,
    RATE_CARD,
    address,
    failure,
    one_call_rate,
    page,
    parcel,
    postage_label,
    rates_for,
)
from sandbox.store import Store
from sandbox.wire import iso, new_id


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
        self._times = Times(self._store)
        self._clock = clock
        #: (carrier, service) pairs no new shipment is offered (the control API's).
        self.withdrawn: set[tuple[str, str]] = set()
        for shipment in self.shipments.values():  # one tracker object, as before
            if shipment["tracker"] is not None:
                shipment["tracker"] = self.trackers[shipment["tracker"]["id"]]
        self.refunds = RefundDesk(self.shipments, self.trackers, clock=clock, store=self._store)
        self._tracker_clock = TrackerClock(
            self.trackers, self.shipments, emit=emit, clock=clock, step_seconds=step_seconds,
            store=self._store, times=self._times, holds=self.refunds.holds,
        )  # fmt: skip
        for tracker in self.trackers.values():  # back on the clock after a restart
            self._tracker_clock.schedule(tracker)

    def create_shipment(self, body: Mapping[str, Any], *, origin: str) -> dict[str, Any]:
        """``POST /shipments``: rated, and bought at once for a one-call buy (nothing is
        kept when the service it names is not offered)."""
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
        shipment["rates"] = rates_for(shipment, withdrawn=self.withdrawn)
        rate = one_call_rate(params, shipment["rates"])
        self.shipments[shipment_id] = shipment
        self._times.created_now(shipment_id)
        self._store.put("shipment", shipment_id, shipment)
        return shipment if rate is None else self._purchase(shipment, rate, origin=origin)

    def set_offered(self, withdrawn: list[tuple[str, str]]) -> dict[str, Any]:
        """Control API: the rate card's services but ``withdrawn`` are offered to new
        shipments (an empty list offers them all again); answers both lists."""
        card = {(carrier, service) for carrier, service, *_ in RATE_CARD}
        unknown = [pair for pair in withdrawn if pair not in card]
        if unknown:
            raise failure(422, "PARAMETER.INVALID", message=f"not on the rate card: {unknown}")
        self.withdrawn = set(withdrawn)
        return {"offered": sorted(card - self.withdrawn), "withdrawn": sorted(self.withdrawn)}

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
        return self._purchase(shipment, rate, origin=origin)

    def _purchase(
        self, shipment: dict[str, Any], rate: Mapping[str, Any], *, origin: str
    ) -> dict[str, Any]:
        """The label bought at ``rate``, its tracker started."""
        shipment.update(
            selected_rate=rate,
            tracking_code="9400" + str(uuid.uuid4().int)[:18],
            postage_label=postage_label(origin),
            updated_at=iso(time.time()),
        )
        shipment["tracker"] = self._tracker_clock.start(shipment, origin=origin)
        shipment["status"] = shipment["tracker"]["status"]
        self._store.put("shipment", shipment["id"], shipment)
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
        self._times.created_now(obj["id"])
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
            # a label being voided is not handed to the carrier
            self._tracker_clock.schedule(tracker)
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
        return page(items, query, key="shipments", created=self._times.created)

    def list_trackers(self, query: Mapping[str, str]) -> dict[str, Any]:
        self.tick()
        items = [
            t
            for t in self.trackers.values()
            if query.get("tracking_code") in (None, t["tracking_code"])
            and query.get("carrier") in (None, t["carrier"])
        ]
        return page(items, query, key="trackers", created=self._times.created)

    def tick(self) -> None:
        """Move every tracker the clock has passed, one status at a time, and settle the
        label refunds that are due."""
        now = self._clock()
        self.refunds.settle_due()
        self._tracker_clock.advance(now)

    def next_move_at(self) -> float | None:
        """When the clock next moves a tracker (sandbox time), None if it moves none."""
        return self._tracker_clock.next_move_at()

    @property
    def in_motion(self) -> int:
        """How many trackers the clock will still move."""
        return self._tracker_clock.in_motion

    def set_status(self, tracker_id: str, status: str) -> dict[str, Any]:
        return self._tracker_clock.set_status(self.tracker(tracker_id), status)


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
