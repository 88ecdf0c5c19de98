"""Stock changes as SQL statements, shared by the API (async) and the pipelines (sync).

A reservation is one conditional UPDATE per line: it only succeeds while enough is
available, so two orders can never both take the last unit. The database's CHECK
constraints (0 <= reserved <= on_hand) stand behind it.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import insert, update
from sqlalchemy.sql.dml import Insert, Update

from fulfillment.models import Inventory, StockMovement


class StockState(StrEnum):
    """Where an order's stock stands (``orders.stock_state``). Reserving, releasing and
    consuming each happen once, guarded by it."""

    NONE = "none"
    RESERVED = "reserved"
    RELEASED = "released"
    CONSUMED = "consumed"


def reserve(product_id: uuid.UUID, quantity: int) -> Update:
    """Reserve ``quantity`` if available; returns the product id when it did."""
    return (
        update(Inventory)
        .where(
            Inventory.product_id == product_id,
            Inventory.on_hand - Inventory.reserved >= quantity,
        )
        .values(reserved=Inventory.reserved + quantity)
        .returning(Inventory.product_id)
    )


def release(product_id: uuid.UUID, quantity: int) -> Update:
    return (
        update(Inventory)
        .where(Inventory.product_id == product_id)
        .values(reserved=Inventory.reserved - quantity)
    )


def consume(product_id: uuid.UUID, quantity: int) -> Update:
    """Reserved stock leaves the warehouse: both counts drop."""
    return (
        update(Inventory)
        .where(Inventory.product_id == product_id)
        .values(on_hand=Inventory.on_hand - quantity, reserved=Inventory.reserved - quantity)
    )


def movement(
    product_id: uuid.UUID, delta: int, reason: str, *, order_id: uuid.UUID | None = None
) -> Insert:
    """A ledger entry; reasons: ``count`` (stock set or received), ``shipped``, ``returned``."""
    return insert(StockMovement).values(
        product_id=product_id, delta=delta, reason=reason, order_id=order_id
    )
