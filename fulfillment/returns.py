"""Returns: a customer sends back some of a delivered order's units, gets a prepaid
label, and is refunded by line once the warehouse has received them.

A return's status only moves forward (``advance``): ``requested`` -> ``label_created``
-> ``in_transit`` -> ``received`` -> ``refunded``, or ``cancelled`` before it is
received. The stock statements a receipt makes are here too: a restocked unit goes
back on hand with a ``returned`` movement, a damaged one gets a ``damaged`` movement of
no stock; each movement names its return, once per (return, product, reason).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, insert, update

from fulfillment.models import Inventory, Return, StockMovement


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


#: The forward path; ``cancelled`` may follow any status before ``received``.
PATH: tuple[ReturnStatus, ...] = (
    ReturnStatus.REQUESTED,
    ReturnStatus.LABEL_CREATED,
    ReturnStatus.IN_TRANSIT,
    ReturnStatus.RECEIVED,
    ReturnStatus.REFUNDED,
)
RANK: dict[ReturnStatus, int] = {status: rank for rank, status in enumerate(PATH)}
#: Statuses the warehouse may still receive a return in.
RECEIVABLE: frozenset[ReturnStatus] = frozenset(PATH[:3])
#: A return whose units no longer count as returned.
VOID: frozenset[ReturnStatus] = frozenset({ReturnStatus.CANCELLED})


class IllegalReturnMove(Exception):
    pass


def may_move(current: str, target: ReturnStatus) -> bool:
    """True when ``target`` is ahead of ``current`` (or a cancel before receipt)."""
    now = ReturnStatus(current)
    if now is ReturnStatus.CANCELLED:
        return False
    if target is ReturnStatus.CANCELLED:
        return RANK[now] < RANK[ReturnStatus.RECEIVED]
    return RANK[target] > RANK[now]


def advance(row: Return, target: ReturnStatus) -> None:
    """Move ``row`` to ``target``; a step back (or sideways) raises."""
    if not may_move(row.status, target):
        raise IllegalReturnMove(f"a return cannot move from {row.status} to {target.value}")
    row.status = target.value


def returned_quantities(returns: list[Return]) -> dict[str, int]:
    """Units per product (as a string id) already asked back by returns not cancelled."""
    counted: dict[str, int] = {}
    for row in returns:
        if ReturnStatus(row.status) in VOID:
            continue
        for line in row.lines:
            counted[line["product_id"]] = counted.get(line["product_id"], 0) + line["quantity"]
    return counted


#: Restocked units are back on hand (and free to sell: nothing reserves them).
RESTOCK = (
    update(Inventory)
    .where(Inventory.product_id == bindparam("b_product"))
    .values(on_hand=Inventory.on_hand + bindparam("b_quantity"))
)
#: A return's ledger entry: ``returned`` (delta = units back on hand) or ``damaged``
#: (delta 0: the units came back but not to stock; ``returns.received_lines`` has them).
RETURN_MOVEMENT = insert(StockMovement).values(
    product_id=bindparam("b_product"), delta=bindparam("b_delta"), reason=bindparam("b_reason"),
    return_id=bindparam("b_return"),
)  # fmt: skip


def receipt_statements(
    return_id: uuid.UUID, received: list[dict[str, Any]]
) -> list[tuple[Any, dict[str, Any]]]:
    """The statements for ``received`` lines (``product_id``, ``quantity``,
    ``condition``, one per product and condition), in product order so two receipts
    never take inventory rows in opposite orders."""
    statements: list[tuple[Any, dict[str, Any]]] = []
    for line in sorted(received, key=lambda item: (item["product_id"], item["condition"])):
        product = uuid.UUID(line["product_id"])
        if line["condition"] == "restock":
            statements.append((RETURN_MOVEMENT, {"b_product": product, "b_delta": line["quantity"],
                                                 "b_reason": "returned", "b_return": return_id}))  # fmt: skip
            statements.append((RESTOCK, {"b_product": product, "b_quantity": line["quantity"]}))
        else:
            statements.append((RETURN_MOVEMENT, {"b_product": product, "b_delta": 0,
                                                 "b_reason": "damaged", "b_return": return_id}))  # fmt: skip
    return statements
