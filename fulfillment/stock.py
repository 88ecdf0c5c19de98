"""Stock changes as prepared SQL statements (built once, with their parameters given per
call), shared by the API (async) and the pipelines (sync).

A reservation is one conditional UPDATE per line: it only succeeds while enough is
available, so two orders can never both take the last unit. The database's CHECK
constraints (0 <= reserved <= on_hand) stand behind it.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import bindparam, insert, update
from sqlalchemy.sql import Executable

from fulfillment.models import Inventory, StockMovement


class StockState(StrEnum):
    """Where an order's stock stands (``orders.stock_state``). Reserving, releasing and
    consuming each happen once, guarded by it."""

    NONE = "none"
    RESERVED = "reserved"
    RELEASED = "released"
    CONSUMED = "consumed"


#: Reserve ``b_quantity`` of ``b_product`` if available; returns the product id when it did.
RESERVE = (
    update(Inventory)
    .where(Inventory.product_id == bindparam("b_product"),
           Inventory.on_hand - Inventory.reserved >= bindparam("b_quantity"))
    .values(reserved=Inventory.reserved + bindparam("b_quantity"))
    .returning(Inventory.product_id)
)  # fmt: skip
RELEASE = (
    update(Inventory)
    .where(Inventory.product_id == bindparam("b_product"))
    .values(reserved=Inventory.reserved - bindparam("b_quantity"))
)
#: Reserved stock leaves the warehouse: both counts drop.
CONSUME = (
    update(Inventory)
    .where(Inventory.product_id == bindparam("b_product"))
    .values(on_hand=Inventory.on_hand - bindparam("b_quantity"),
            reserved=Inventory.reserved - bindparam("b_quantity"))
)  # fmt: skip
#: A ledger entry; reasons: ``count`` (stock set or received), ``shipped``, ``returned``.
MOVEMENT = insert(StockMovement).values(
    product_id=bindparam("b_product"), delta=bindparam("b_delta"), reason=bindparam("b_reason"),
    order_id=bindparam("b_order"),
)  # fmt: skip

#: A prepared statement and its parameters, for a sync or an async session alike.
Statement = tuple[Executable, dict]


def reserve(product_id: uuid.UUID, quantity: int) -> Statement:
    return RESERVE, {"b_product": product_id, "b_quantity": quantity}


def release(product_id: uuid.UUID, quantity: int) -> Statement:
    return RELEASE, {"b_product": product_id, "b_quantity": quantity}


def consume(product_id: uuid.UUID, quantity: int) -> Statement:
    return CONSUME, {"b_product": product_id, "b_quantity": quantity}


def movement(
    product_id: uuid.UUID, delta: int, reason: str, *, order_id: uuid.UUID | None = None
) -> Statement:
    return MOVEMENT, {"b_product": product_id, "b_delta": delta, "b_reason": reason,
                      "b_order": order_id}  # fmt: skip
