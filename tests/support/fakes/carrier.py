"""The in-memory EasyPost (``integrations.ports`` carrier): it finds the label already
bought for a shipment reference, counts labels bought apart from the calls made, and
keeps the trackers of the parcels it sent."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from integrations.errors import ServiceNotOffered
from integrations.ports import Label, Parcel, ShippingService, TrackerStatus, Tracking
from tests.support.fakes.common import _Faults, _ids, _new_id, permanent, transient


class FakeCarrier:
    """EasyPost shipments and trackers. One label per shipment reference (the order
    id): buying again returns the label already bought, however late - the port's
    contract, which the gateway keeps with its ``ShipmentLedger`` (EasyPost itself
    cannot be searched by reference). Addresses whose postal code is
    in ``invalid_postal_codes`` are refused as EasyPost refuses an unverifiable one. A
    label is of the service asked for (``USPS Priority`` when none is), and one of the
    ``withdrawn`` services is refused as the gateway refuses it (``ServiceNotOffered``)."""

    def __init__(self, *, invalid_postal_codes: frozenset[str] = frozenset({"00000"})) -> None:
        self.invalid_postal_codes = set(invalid_postal_codes)
        #: Services no longer offered for any parcel.
        self.withdrawn: set[ShippingService] = set()
        self.labels: dict[str, Label] = {}  # by reference
        self.parcels: dict[str, Parcel | None] = {}
        #: The ship-from address each ship() was given, by reference (None: the default).
        self.shipped_from: dict[str, dict[str, Any] | None] = {}
        self.trackers: dict[str, Tracking] = {}  # by tracker id
        self.calls: Counter[str] = Counter()
        self.voided: list[str] = []  # shipment ids whose refund was asked for
        self.lookups: list[bool] = []  # whether each ship() asked to look for an earlier try
        self._faults = _Faults()
        self._lock = threading.Lock()

    def fail_next(
        self, operation: str, error: BaseException, *, times: int = 1, after: int = 0
    ) -> None:
        with self._lock:
            self._faults.fail_next(operation, error, times=times, after=after)

    def lose_next(self, operation: str, *, times: int = 1) -> None:
        """The next ``operation`` takes effect, but its caller sees a timeout."""
        with self._lock:
            self._faults.lose_next(operation, times=times)

    def ship(
        self,
        *,
        order_id: str,
        address: Mapping[str, Any],
        parcel: Parcel | None = None,
        service: ShippingService | None = None,
        lookup: bool = True,
        from_address: Mapping[str, Any] | None = None,
    ) -> Label:
        reference = str(order_id)
        with self._lock:
            self.calls["ship"] += 1
            self.shipped_from[reference] = dict(from_address) if from_address else None
            self.lookups.append(lookup)
            self._faults.check("ship")
            if reference in self.labels:
                return self.labels[reference]
            if str(address.get("postal_code")) in self.invalid_postal_codes:
                raise permanent("easypost", "create_shipment", "ADDRESS.VERIFY.FAILURE")
            if service in self.withdrawn:
                raise ServiceNotOffered(service.carrier, service.service, offered=[],
                                        provider="easypost", operation="buy_shipment")  # fmt: skip
            bought = service or ShippingService("USPS", "Priority")
            shipment_id, tracker_id = _new_id("shp"), _new_id("trk")
            code = f"EZ{next(_ids):010d}"
            label = Label(
                shipment_id=shipment_id, reference=reference, tracking_code=code,
                label_url=f"https://labels.example.com/{shipment_id}.png", tracker_id=tracker_id,
                carrier=bought.carrier, service=bought.service, rate="7.58", currency="USD",
            )  # fmt: skip
            self.labels[reference] = label
            self.parcels[reference] = parcel
            self.trackers[tracker_id] = Tracking(
                id=tracker_id, tracking_code=code, status=TrackerStatus.PRE_TRANSIT,
                status_detail=None, shipment_id=shipment_id, carrier=bought.carrier,
            )  # fmt: skip
            if self._faults.answer_lost("ship"):
                raise transient("easypost", "buy_shipment")
            return label

    def find_shipment(self, order_id: str) -> Label | None:
        with self._lock:
            self.calls["find_shipment"] += 1
            return self.labels.get(str(order_id))

    def void_label(self, shipment_id: str) -> str:
        """EasyPost's shipment refund, submitted (the sandbox settles it later)."""
        with self._lock:
            self.calls["void_label"] += 1
            self._faults.check("void_label")
            if shipment_id not in self.voided:  # asked again: where it stands (as the gateway)
                self.voided.append(shipment_id)
            return "submitted"

    def retrieve_tracker(self, tracker_id: str) -> Tracking:
        with self._lock:
            self.calls["retrieve_tracker"] += 1
            self._faults.check("retrieve_tracker")
            if tracker_id not in self.trackers:
                raise permanent("easypost", "retrieve_tracker", "NOT_FOUND")
            return self.trackers[tracker_id]

    def find_tracker(self, tracking_code: str) -> Tracking | None:
        with self._lock:
            self.calls["find_tracker"] += 1
            found = [t for t in self.trackers.values() if t.tracking_code == tracking_code]
            return found[0] if found else None

    def ship_return(
        self, *, return_id: str, address: Mapping[str, Any], parcel: Parcel | None = None
    ) -> Label:
        """A return's label, one per reference ``return_<id>`` (as EasyPost's lookup
        finds it); ``self.returns`` keeps the address each was bought from."""
        reference = f"return_{return_id}"
        with self._lock:
            self.calls["ship_return"] += 1
            self._faults.check("ship_return")
            if reference not in self.labels:
                shipment_id = _new_id("shp")
                self.labels[reference] = Label(
                    shipment_id=shipment_id, reference=reference,
                    tracking_code=f"EZ{next(_ids):010d}",
                    label_url=f"https://labels.example.com/{shipment_id}.png", tracker_id=None,
                    carrier="USPS", service="Priority", rate="7.58", currency="USD",
                )  # fmt: skip
                self.parcels[reference] = parcel
            if self._faults.answer_lost("ship_return"):
                raise transient("easypost", "buy_shipment")
            return self.labels[reference]

    def move_tracker(self, tracking_code: str, status: TrackerStatus) -> Tracking:
        """The parcel moves on (EasyPost would now send ``tracker.updated``)."""
        with self._lock:
            tracker = next(t for t in self.trackers.values() if t.tracking_code == tracking_code)
            self.trackers[tracker.id] = replace(tracker, status=status)
            return self.trackers[tracker.id]

    @property
    def labels_bought(self) -> int:
        with self._lock:
            return len(self.labels)
