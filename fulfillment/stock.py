"""Stock changes as prepared SQL statements (built once, with their parameters given per
call), shared by the API (async) and the pipelines (sync).

Stock is counted per (product, location). A reservation is one conditional UPDATE per
(product, location): it only succeeds while enough is available there, so two orders can
never both take the last unit of a location. The database's CHECK constraints
(0 <= reserved <= on_hand, per row) stand behind it.

Where an order's stock is held is its ``allocation`` (``orders.allocation``); a location
of None means the default location (``default_location_id()``), which is where every
order placed before locations existed holds its stock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.sql import Executable

from fulfillment.line_cancellation import remaining
from fulfillment.models import Inventory, StockMovement


class StockState(StrEnum):
    """Where an order's stock stands (``orders.stock_state``). Reserving, releasing and
    consuming each happen once, guarded by it."""

    NONE = "none"
    RESERVED = "reserved"
    RELEASED = "released"
    CONSUMED = "consumed"


class Held(NamedTuple):
    """Units of one product an order holds at one location (None: the default)."""

    product_id: uuid.UUID
    location_id: uuid.UUID | None
    quantity: int


def allocation_json(held: Iterable[Held]) -> list[dict[str, Any]]:
    """``orders.allocation`` for ``held``, in (product, location) order."""
    return [
        {"product_id": str(h.product_id), "location_id": str(h.location_id), "quantity": h.quantity}
        for h in sorted(held, key=lambda h: (str(h.product_id), str(h.location_id)))
    ]


def held_by(
    order: Any, lines: Iterable[tuple[uuid.UUID, int]], *, leaving: str | None = None
) -> list[Held]:
    """What ``order`` holds, from its allocation, in (product, location) order (the lock
    order of inventory rows): not the packages that have left (``orders.parcels``; their
    stock was consumed), except the one ``leaving`` now (its location id). An order
    reserved by code older than locations has none written: its ``lines``, less what was
    cancelled of them, are held at the default location."""
    allocation: list[Mapping[str, Any]] = order.allocation or []
    if allocation:
        gone = getattr(order, "parcels", None) or {}
        return [Held(uuid.UUID(str(a["product_id"])), uuid.UUID(str(a["location_id"])),
                     int(a["quantity"])) for a in allocation
                if str(a["location_id"]) == leaving or str(a["location_id"]) not in gone]  # fmt: skip
    left = remaining(lines, getattr(order, "cancelled_lines", None) or [])
    return [Held(p, None, q) for p, q in sorted(left, key=lambda line: str(line[0]))]


def shrink(
    held: Iterable[Held], cancelled: Iterable[Mapping[str, Any]]
) -> tuple[list[Held], list[Held]]:
    """(what the order still holds, what to give back) once ``cancelled`` lines go:
    each product's units are given back first where the order holds the fewest of it,
    so a package that shrinks to nothing is dropped before a larger one shrinks."""
    take = {str(line["product_id"]): int(line["quantity"]) for line in cancelled}
    kept: list[Held] = []
    back: list[Held] = []
    by_product: dict[uuid.UUID, list[Held]] = {}
    for h in held:
        by_product.setdefault(h.product_id, []).append(h)
    for product, entries in by_product.items():
        left = take.get(str(product), 0)
        for h in sorted(entries, key=lambda h: (h.quantity, str(h.location_id))):
            give = min(left, h.quantity)
            left -= give
            if give:
                back.append(Held(product, h.location_id, give))
            if h.quantity - give:
                kept.append(Held(product, h.location_id, h.quantity - give))
    return kept, back


#: The location a statement names (``b_location``), or the default one when it names none.
AT_LOCATION = func.coalesce(
    bindparam("b_location", type_=Inventory.location_id.type), func.default_location_id()
)
_PRODUCT = Inventory.product_id == bindparam("b_product")
_LOCATION = Inventory.location_id == AT_LOCATION

#: Reserve ``b_quantity`` of ``b_product`` at ``b_location`` if available there; returns
#: the product id when it did.
RESERVE = (
    update(Inventory)
    .where(_PRODUCT, _LOCATION, Inventory.on_hand - Inventory.reserved >= bindparam("b_quantity"))
    .values(reserved=Inventory.reserved + bindparam("b_quantity"))
    .returning(Inventory.product_id)
)
RELEASE = (
    update(Inventory)
    .where(_PRODUCT, _LOCATION)
    .values(reserved=Inventory.reserved - bindparam("b_quantity"))
)
#: Reserved stock leaves the location: both counts drop.
CONSUME = (
    update(Inventory)
    .where(_PRODUCT, _LOCATION)
    .values(on_hand=Inventory.on_hand - bindparam("b_quantity"),
            reserved=Inventory.reserved - bindparam("b_quantity"))
)  # fmt: skip
#: A ledger entry; reasons: ``count`` (stock set or received), ``shipped``, ``returned``.
MOVEMENT = insert(StockMovement).values(
    product_id=bindparam("b_product"), location_id=AT_LOCATION,
    delta=bindparam("b_delta"), reason=bindparam("b_reason"), order_id=bindparam("b_order"),
)  # fmt: skip

#: A prepared statement and its parameters, for a sync or an async session alike.
Statement = tuple[Executable, dict]


def reserve(
    product_id: uuid.UUID, quantity: int, location_id: uuid.UUID | None = None
) -> Statement:
    return RESERVE, {"b_product": product_id, "b_location": location_id, "b_quantity": quantity}


def release(
    product_id: uuid.UUID, quantity: int, location_id: uuid.UUID | None = None
) -> Statement:
    return RELEASE, {"b_product": product_id, "b_location": location_id, "b_quantity": quantity}


def consume(
    product_id: uuid.UUID, quantity: int, location_id: uuid.UUID | None = None
) -> Statement:
    return CONSUME, {"b_product": product_id, "b_location": location_id, "b_quantity": quantity}


def movement(
    product_id: uuid.UUID,
    delta: int,
    reason: str,
    *,
    order_id: uuid.UUID | None = None,
    location_id: uuid.UUID | None = None,
) -> Statement:
    return MOVEMENT, {"b_product": product_id, "b_location": location_id, "b_delta": delta,
                      "b_reason": reason, "b_order": order_id}  # fmt: skip
