"""An order's packages: its stock at each location it is taken from (``orders.allocation``,
written by the reservation), each shipped as a parcel of its own. A package's id is
derived from the order and the location (a name-based UUID), so it is the same on every
read and in every event without a row of its own, and an operator names it to move it
(``api.desk.packages``).

A package that has left has a parcel: ``orders.parcels``, keyed by location id, holds its
carrier, tracking code, shipment and how far it has come (``shipped``, ``in_transit``,
``delivered``, or ``failed``: it will not arrive). The parcel is written under the
order's row lock by the commit that stores its label and by the tracker events of an
order in several packages; the order's status follows its packages (``order_status``).
An order in one package moves with its parcel directly (the statement that stores a
tracker event moves it, ``api.intake.providers``), so its package reads the order's.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fulfillment.states import OrderStatus as S

#: The namespace of package ids (``uuid5(PACKAGES, "<order id>/<location id>")``).
PACKAGES = uuid.UUID("3f1c2a8e-6d0b-5c4e-9a57-0b9a6f1d2e71")

#: How far a package has come, in order; a parcel never moves back.
PROGRESS: tuple[str, ...] = ("pending", "shipped", "in_transit", "delivered")
#: A parcel the carrier reported will not arrive.
FAILED = "failed"

#: A package's status by its order's, for an order in one package (or one whose parcel
#: predates ``orders.parcels``): waiting until the parcel leaves, then the parcel's.
_BY_ORDER: Mapping[str, str] = {
    S.SHIPPED: "shipped", S.IN_TRANSIT: "in_transit", S.DELIVERED: "delivered",
    S.CANCELLED: "cancelled", S.REJECTED: "cancelled", S.REFUNDED: "cancelled",
}  # fmt: skip


def package_id(order_id: uuid.UUID | str, location_id: uuid.UUID | str) -> uuid.UUID:
    return _package_id(str(order_id), str(location_id))


@functools.lru_cache(maxsize=4096)
def _package_id(order_id: str, location_id: str) -> uuid.UUID:
    """A SHA-1 a call, asked for each package every time an order's packages are
    derived (a step, a render of a merchant event): the last orders' are kept."""
    return uuid.uuid5(PACKAGES, f"{order_id}/{location_id}")


@dataclass(frozen=True, slots=True)
class Package:
    id: uuid.UUID
    location_id: uuid.UUID
    status: str
    #: ``[{"product_id", "quantity"}]``, in product order.
    lines: list[dict[str, Any]]
    #: The parcel once it has left: ``{"carrier", "tracking_code", "shipment_id", "status"}``.
    parcel: Mapping[str, Any] | None = None

    @property
    def units(self) -> int:
        return sum(int(line["quantity"]) for line in self.lines)


def package_status(status: str, stock_state: str) -> str:
    """A package's status from its order's: ``pending`` until the parcel leaves (its
    stock consumed), then the parcel's; ``cancelled`` once the stock went back."""
    if status in _BY_ORDER:
        return _BY_ORDER[status]
    return {"consumed": "shipped", "released": "cancelled"}.get(stock_state, "pending")


def packages_of(
    order_id: uuid.UUID,
    status: str,
    stock_state: str,
    allocation: Iterable[Mapping[str, Any]],
    parcels: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Package]:
    """The order's packages, one per location of its allocation, in location order."""
    by_location: dict[str, list[dict[str, Any]]] = {}
    for entry in allocation:
        by_location.setdefault(str(entry["location_id"]), []).append(
            {"product_id": str(entry["product_id"]), "quantity": int(entry["quantity"])}
        )
    parcels = parcels or {}
    single = len(by_location) == 1
    packages = []
    for location, lines in sorted(by_location.items()):
        parcel = parcels.get(location)
        if parcel is None:
            state = (
                "cancelled"
                if stock_state == "released"
                else (package_status(status, stock_state) if not parcels else "pending")
            )
        elif single and status in _BY_ORDER:
            state = _BY_ORDER[status]
        else:
            state = str(parcel.get("status") or "shipped")
        packages.append(Package(id=package_id(order_id, location), location_id=uuid.UUID(location),
                                status=state, lines=sorted(lines, key=lambda line: line["product_id"]),
                                parcel=parcel))  # fmt: skip
    return packages


def label_reference(order_id: uuid.UUID | str, location_id: uuid.UUID | str | None,
                    count: int) -> str:  # fmt: skip
    """The carrier reference a package's label is bought under: the order id for an
    order in one package (as before packages), ``<order id>:<location id>`` for each of
    several."""
    return str(order_id) if count <= 1 or location_id is None else f"{order_id}:{location_id}"


def label_references(
    order_id: uuid.UUID | str, allocation: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Every reference a label of the order may have been bought under, as it stands."""
    locations = sorted({str(entry["location_id"]) for entry in allocation})
    return [label_reference(order_id, location, len(locations)) for location in locations] or [
        str(order_id)
    ]


def unshipped(packages: Iterable[Package]) -> list[Package]:
    """The packages still waiting for their label, in location order."""
    return [p for p in packages if p.parcel is None and p.status == "pending"]


def order_status(packages: Iterable[Package]) -> S | None:
    """The order's status as its packages give it (None before any has left): some
    shipped, ``partially_shipped``; all shipped, ``shipped``, then ``in_transit`` once one
    travels, ``partially_delivered`` once one, ``delivered`` once every one has arrived.
    A failed parcel counts as shipped: its refund is its own (``pipelines.shipping``)."""
    states = [p.status for p in packages if p.status != "cancelled"]
    if not states or all(state == "pending" for state in states):
        return None
    if any(state == "pending" for state in states):
        return S.PARTIALLY_SHIPPED
    arrived = [state == "delivered" for state in states if state != FAILED]
    if arrived and all(arrived):
        return S.DELIVERED
    if any(arrived):
        return S.PARTIALLY_DELIVERED
    if any(state == "in_transit" for state in states):
        return S.IN_TRANSIT
    return S.SHIPPED


def advanced(current: str | None, new: str) -> bool:
    """True when a parcel at ``current`` moves on to ``new`` (never back; a failure is
    final, and only a parcel not yet delivered fails)."""
    if current == FAILED:
        return False
    if new == FAILED:
        return current != "delivered"
    rank = {state: i for i, state in enumerate(PROGRESS)}
    return rank.get(new, 0) > rank.get(current or "pending", 0)


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
