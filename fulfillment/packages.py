"""An order's packages: its stock at each location it is taken from (``orders.allocation``,
written by the reservation). A package's id is derived from the order and the location
(a name-based UUID), so it is the same on every read and in every event without a row of
its own, and an operator names it to move it (``api.desk.packages``).

Until packages ship as parcels of their own (issue 23, next part) every package of an
order travels in the order's one parcel: its status is the order's, read as a shipment.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fulfillment.states import OrderStatus as S

#: The namespace of package ids (``uuid5(PACKAGES, "<order id>/<location id>")``).
PACKAGES = uuid.UUID("3f1c2a8e-6d0b-5c4e-9a57-0b9a6f1d2e71")

#: A package's status by its order's: waiting until the parcel leaves, then the parcel's.
_BY_ORDER: Mapping[str, str] = {
    S.SHIPPED: "shipped", S.IN_TRANSIT: "in_transit", S.DELIVERED: "delivered",
    S.CANCELLED: "cancelled", S.REJECTED: "cancelled", S.REFUNDED: "cancelled",
}  # fmt: skip


def package_id(order_id: uuid.UUID | str, location_id: uuid.UUID | str) -> uuid.UUID:
    return uuid.uuid5(PACKAGES, f"{order_id}/{location_id}")


@dataclass(frozen=True, slots=True)
class Package:
    id: uuid.UUID
    location_id: uuid.UUID
    status: str
    #: ``[{"product_id", "quantity"}]``, in product order.
    lines: list[dict[str, Any]]


def package_status(status: str, stock_state: str) -> str:
    """A package's status from its order's: ``pending`` until the parcel leaves (its
    stock consumed), then the parcel's; ``cancelled`` once the stock went back."""
    if status in _BY_ORDER:
        return _BY_ORDER[status]
    return {"consumed": "shipped", "released": "cancelled"}.get(stock_state, "pending")


def packages_of(
    order_id: uuid.UUID, status: str, stock_state: str, allocation: Iterable[Mapping[str, Any]]
) -> list[Package]:
    """The order's packages, one per location of its allocation, in location order."""
    by_location: dict[str, list[dict[str, Any]]] = {}
    for entry in allocation:
        by_location.setdefault(str(entry["location_id"]), []).append(
            {"product_id": str(entry["product_id"]), "quantity": int(entry["quantity"])}
        )
    return [
        Package(id=package_id(order_id, location), location_id=uuid.UUID(location),
                status=package_status(status, stock_state),
                lines=sorted(lines, key=lambda line: line["product_id"]))
        for location, lines in sorted(by_location.items())
    ]  # fmt: skip


def moved(
    allocation: Iterable[Mapping[str, Any]], source: uuid.UUID, target: uuid.UUID
) -> list[dict[str, Any]]:
    """The allocation with everything held at ``source`` held at ``target`` instead
    (merged with what ``target`` held already), in (product, location) order."""
    held: dict[tuple[str, str], int] = {}
    for entry in allocation:
        location = (
            str(target) if str(entry["location_id"]) == str(source) else str(entry["location_id"])
        )
        key = (str(entry["product_id"]), location)
        held[key] = held.get(key, 0) + int(entry["quantity"])
    return [
        {"product_id": p, "location_id": loc, "quantity": q} for (p, loc), q in sorted(held.items())
    ]
