"""The order row a step holds, on Core: read with one prepared ``SELECT … FOR UPDATE``,
changed as plain attributes, written back with one ``UPDATE`` of the changed columns
just before the commit (or before the inventory rows are touched; see
``pipelines.common.lock_stock_last``).

The ORM's unit of work did the same for about a quarter of a worker's CPU per order
(identity map, attribute instrumentation, flush planning), for one row that no step
reads through a relationship.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from fulfillment.models import Order

ORDERS = Order.__table__
#: Every column of the order, under its attribute name.
COLUMNS: tuple[str, ...] = tuple(column.key for column in ORDERS.columns)


class LockedOrder:
    """An order row locked by this transaction. Attributes read like ``Order``'s;
    setting one records it for the ``UPDATE`` that ``write_orders`` sends."""

    __slots__ = ("_changed", "_values")

    def __init__(self, row: Row) -> None:
        object.__setattr__(self, "_values", row._asdict())
        object.__setattr__(self, "_changed", {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._values:
            raise AttributeError(f"orders has no column {name!r}")
        self._values[name] = value
        self._changed[name] = value

    def snapshot(self) -> tuple[dict, dict]:
        return dict(self._values), dict(self._changed)

    def restore(self, snapshot: tuple[dict, dict]) -> None:
        values, changed = snapshot
        self._values.clear()
        self._values.update(values)
        self._changed.clear()
        self._changed.update(changed)


#: One order, locked until the transaction ends.
_LOCK = select(ORDERS).where(ORDERS.c.id == bindparam("b_order")).with_for_update()
#: The UPDATE of each set of changed columns (a handful of sets occur).
_UPDATES: dict[frozenset[str], Any] = {}


def lock(session: Session, order_id: uuid.UUID) -> LockedOrder | None:
    row = session.connection().execute(_LOCK, {"b_order": order_id}).first()
    return None if row is None else held(session, [row])[0]


def held(session: Session, rows: Iterable[Row]) -> list[LockedOrder]:
    """Orders read ``FOR UPDATE`` by the caller, kept for ``write_orders``."""
    orders = [LockedOrder(row) for row in rows]
    session.info.setdefault("locked_orders", []).extend(orders)
    return orders


def write_orders(session: Session) -> None:
    """Send the changed columns of every order this transaction holds."""
    connection = None
    for order in session.info.get("locked_orders", ()):
        if not order._changed:
            continue
        connection = connection or session.connection()
        changed = order._changed
        connection.execute(
            _update_of(frozenset(changed)),
            {
                "b_id": order._values["id"],
                **{f"b_{name}": value for name, value in changed.items()},
            },
        )
        changed.clear()


def snapshot(session: Session) -> list[tuple[LockedOrder, tuple[dict, dict]]]:
    return [(order, order.snapshot()) for order in session.info.get("locked_orders", ())]


def _update_of(columns: frozenset[str]) -> Any:
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = (
            update(ORDERS).where(ORDERS.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in sorted(columns)})
        )  # fmt: skip
        _UPDATES[columns] = statement
    return statement
