"""The shipment kept for a reference before it is bought (``ShipmentLedger``): what a
reference is (the order id, ``return_<id>``), what a shipment was made for (its request
digest), and a ledger in this process's memory for tools and tests. Workers keep theirs
in the database (``pipelines.shipping.ledger``)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from integrations.ports import KeptShipment


class MemoryShipmentLedger:
    """A ``ShipmentLedger`` in this process's memory: for tools and tests that buy
    within one process. Workers keep shipments in the database
    (``pipelines.shipping.ledger``), so another process's retry finds them."""

    def __init__(self) -> None:
        self._kept: dict[str, KeptShipment] = {}
        self._lock = threading.Lock()

    def recall(self, reference: str) -> KeptShipment | None:
        with self._lock:
            return self._kept.get(reference)

    def keep(self, reference: str, kept: KeptShipment) -> KeptShipment:
        with self._lock:
            return self._kept.setdefault(reference, kept)

    def replace(self, reference: str, *, old: str, new: KeptShipment) -> KeptShipment:
        with self._lock:
            current = self._kept.get(reference)
            if current is None or current.shipment_id == old:
                self._kept[reference] = new
            return self._kept[reference]


def request_digest(params: Mapping[str, Any]) -> str:
    """What a shipment was made for (addresses, parcel, return or not), as a digest: a
    kept, unbought shipment is bought only for the request it was made for."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def return_reference(return_id: str) -> str:
    """The EasyPost reference of a return's shipment."""
    return f"return_{return_id}"
