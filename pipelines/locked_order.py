"""The order row a step holds, on Core: read with one prepared ``SELECT … FOR UPDATE``,
changed as plain attributes, written back with one ``UPDATE`` of the changed columns
just before the commit (or before the inventory rows are touched; see
``pipelines.stock.consumption.lock_stock_last``).

The ORM's unit of work did the same for about a quarter of a worker's CPU per order
(identity map, attribute instrumentation, flush planning), for one row that no step
reads through a relationship.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from fulfillment.models import Order
from pipelines import sql

ORDERS = Order.__table__
#: Every column of the order, under its attribute name.
COLUMNS: tuple[str, ...] = tuple(column.key for column in ORDERS.columns)


class LockedOrder:
    """An order row locked by this transaction. Attributes read like ``Order``'s;
    setting one records it for the ``UPDATE`` that ``write_orders`` sends."""

    __slots__ = ("_changed", "_values")

    def __init__(self, row: Any) -> None:
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
    row = sql.one(session, _LOCK, {"b_order": order_id})
    return None if row is None else held(session, [row])[0]


def held(session: Session, rows: Iterable[Any]) -> list[LockedOrder]:
    """Orders read ``FOR UPDATE`` by the caller, kept for ``write_orders``."""
    orders = [LockedOrder(row) for row in rows]
    session.info.setdefault("locked_orders", []).extend(orders)
    return orders


def write_orders(session: Session) -> None:
    """Send the changed columns of every order this transaction holds, now."""
    for statement, params in writes(session):
        sql.run(session, statement, params[0])


def writes(session: Session) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The ``UPDATE`` of each order this transaction holds with changed columns, with
    its parameters, for the caller to send; the changes count as sent."""
    out = []
    for order in session.info.get("locked_orders", ()):
        if not order._changed:
            continue
        changed = order._changed
        params = {"b_id": order._values["id"],
                  **{f"b_{name}": value for name, value in changed.items()}}  # fmt: skip
        out.append((_update_of(frozenset(changed)), [params]))
        changed.clear()
    return out


def changed(session: Session) -> bool:
    """True when an order this transaction holds has a change ``write_orders`` would send."""
    return any(order._changed for order in session.info.get("locked_orders", ()))


def snapshot(session: Session) -> list[tuple[LockedOrder, tuple[dict, dict]]]:
    return [(order, order.snapshot()) for order in session.info.get("locked_orders", ())]


class LinesCache:
    """The lines of the orders a process saw last, by order id, up to ``size`` orders
    (the oldest go first). An order's lines never change once it is placed."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lines: dict[uuid.UUID, list] = {}
        self._lock = threading.Lock()

    def get(self, order_id: uuid.UUID) -> list | None:
        return self._lines.get(order_id)

    def put(self, order_id: uuid.UUID, lines: list) -> None:
        with self._lock:
            self._lines[order_id] = lines
            if len(self._lines) > self._size:
                del self._lines[next(iter(self._lines))]


def _update_of(columns: frozenset[str]) -> Any:
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = (
            update(ORDERS).where(ORDERS.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in sorted(columns)})
        )  # fmt: skip
        _UPDATES[columns] = statement
    return statement
