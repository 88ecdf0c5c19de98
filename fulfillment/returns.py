"""Returns: a customer sends back some of a delivered order's units, gets a prepaid
label, and is refunded by line once the warehouse has received them.

A return's status only moves forward (``advance``): ``requested`` -> ``label_created``
-> ``in_transit`` -> ``received`` -> ``refunded``, or ``cancelled`` before it is
received. The stock statements a receipt makes are here too: a restocked unit goes
back on hand, at the location it was taken from unless the receipt names another, with
a ``returned`` movement, a damaged one gets a ``damaged`` movement of
no stock; each movement names its return, once per (return, product, reason).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from fulfillment.line_cancellation import cancelled_units
from fulfillment.models import Inventory, Order, Return, StockMovement
from fulfillment.stock import AT_LOCATION


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


class ReturnLineRefused(Exception):
    """A line of a return, or of its receipt, that cannot be taken: ``code`` says why and
    ``details`` which line; ``conflict`` when what the order or the return already holds
    refuses it (the API answers 409), not the request itself (422)."""

    def __init__(self, code: str, message: str, *, conflict: bool, **details: Any) -> None:
        super().__init__(message)
        self.code, self.conflict, self.details = code, conflict, details


def returnable_lines(
    order: Order, returns: list[Return], wanted: list[tuple[str, int]]
) -> list[dict[str, Any]]:
    """The lines of a new return asking back ``wanted`` ((product id, quantity)): each
    one of the order's, and never more units than were delivered less what other
    returns (not cancelled) already ask back."""
    gone = cancelled_units(order.cancelled_lines or [])
    delivered = {str(line.product_id): line.quantity - gone.get(str(line.product_id), 0)
                 for line in order.lines}  # fmt: skip
    asked = returned_quantities(returns)
    lines = []
    for product, quantity in wanted:
        if product not in delivered:
            raise ReturnLineRefused("not_in_order", "a returned line must be one of the order's lines",
                                    conflict=False, product_id=product)  # fmt: skip
        left = delivered[product] - asked.get(product, 0)
        if quantity > left:
            raise ReturnLineRefused("return_exceeds_quantity",
                                    f"only {left} of this line may still be returned",
                                    conflict=True, product_id=product,
                                    returnable_quantity=left)  # fmt: skip
        lines.append({"product_id": product, "quantity": quantity})
    return lines


def received_lines(row: Return, counted: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """A receipt's lines from ``counted`` ((product id, quantity, condition)): each a
    product of the return, never more units of it (over both conditions) than the return
    asked back."""
    asked = {line["product_id"]: line["quantity"] for line in row.lines}
    taken: dict[str, int] = {}
    received = []
    for product, quantity, condition in counted:
        if product not in asked:
            raise ReturnLineRefused("not_in_return", "a received line must be one of the return's",
                                    conflict=False, product_id=product)  # fmt: skip
        taken[product] = taken.get(product, 0) + quantity
        if taken[product] > asked[product]:
            raise ReturnLineRefused("receipt_exceeds_return",
                                    f"the return asked back {asked[product]} of this product",
                                    conflict=True, product_id=product,
                                    returned_quantity=asked[product])  # fmt: skip
        received.append({"product_id": product, "quantity": quantity, "condition": condition})
    return received


#: Restocked units are back on hand at a location (and free to sell: nothing reserves
#: them). The row is made if the location never held the product.
RESTOCK = (
    pg_insert(Inventory).values(product_id=bindparam("b_product"), location_id=AT_LOCATION,
                                on_hand=bindparam("b_quantity"))
    .on_conflict_do_update(index_elements=[Inventory.product_id, Inventory.location_id],
                           set_={"on_hand": Inventory.on_hand + bindparam("b_quantity"),
                                 "updated_at": func.now()})
)  # fmt: skip
#: A return's ledger entry: ``returned`` (delta = units back on hand) or ``damaged``
#: (delta 0: the units came back but not to stock; ``returns.received_lines`` has them).
RETURN_MOVEMENT = insert(StockMovement).values(
    product_id=bindparam("b_product"), delta=bindparam("b_delta"), reason=bindparam("b_reason"),
    return_id=bindparam("b_return"), location_id=AT_LOCATION,
)  # fmt: skip


def restock_locations(order: Any) -> dict[str, uuid.UUID | None]:
    """Where each product of ``order`` goes back by default: the location it was taken
    from (of several, the one that gave the most); None, the default location, for an
    order reserved before locations."""
    given: dict[str, tuple[int, uuid.UUID]] = {}
    for entry in order.allocation or []:
        product, quantity = str(entry["product_id"]), int(entry["quantity"])
        if product not in given or quantity > given[product][0]:
            given[product] = (quantity, uuid.UUID(str(entry["location_id"])))
    return {product: location for product, (_, location) in given.items()}


def receipt_statements(
    return_id: uuid.UUID,
    received: list[dict[str, Any]],
    at: Mapping[str, uuid.UUID | None],
) -> list[tuple[Any, dict[str, Any]]]:
    """The statements for ``received`` lines (``product_id``, ``quantity``,
    ``condition``, one per product and condition), each product restocked at ``at``'s
    location for it (missing or None: the default location), in product order so two
    receipts never take inventory rows in opposite orders."""
    statements: list[tuple[Any, dict[str, Any]]] = []
    for line in sorted(received, key=lambda item: (item["product_id"], item["condition"])):
        product = uuid.UUID(line["product_id"])
        where = {"b_product": product, "b_location": at.get(line["product_id"])}
        if line["condition"] == "restock":
            statements.append((RETURN_MOVEMENT, {**where, "b_delta": line["quantity"],
                                                 "b_reason": "returned", "b_return": return_id}))  # fmt: skip
            statements.append((RESTOCK, {**where, "b_quantity": line["quantity"]}))
        else:
            statements.append((RETURN_MOVEMENT, {**where, "b_delta": 0, "b_reason": "damaged",
                                                 "b_return": return_id}))  # fmt: skip
    return statements
