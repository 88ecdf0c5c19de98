"""Step 1: reserve every line or none. Out of stock means rejected, and the customer
is told. The same message then charges the card (see ``pipelines.saga``)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from fulfillment import stock
from fulfillment.states import OrderStatus as S
from fulfillment.stock import StockState
from integrations.ports import NotificationKind
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    Savepoint,
    begin,
    lock_order,
    lock_stock_last,
    move,
    order_lines,
    tell_customer,
)
from pipelines.deps import Deps

STEP = "reserve_inventory"


def reserve_inventory(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """The order is written as reserved first and the inventory rows are updated last,
    just before the commit (see ``lock_stock_last``); a short line rolls the whole
    reservation back to its savepoint and the order is rejected instead."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.PENDING:
            return SKIPPED  # done already, or moved on: a duplicate message
        lines = order_lines(session, order.id)
        reserving = Savepoint(session)
        order.stock_state = StockState.RESERVED
        order.reserved_until = deps.now() + timedelta(seconds=deps.settings.reservation_ttl_seconds)
        move(session, order, S.RESERVED, step=STEP, attempt=attempt)
        lock_stock_last(session)
        short = _first_short_line(session, lines)
        if short is None:
            reserving.commit()
            return SUCCESS
        reserving.rollback()
        move(session, order, S.REJECTED, step=STEP, attempt=attempt, outcome="failed",
             error="out of stock", details={"product_ids": [short]})  # fmt: skip
        tell_customer(session, order, NotificationKind.CANCELLED, reason="out_of_stock")
    return FAILED


def _first_short_line(session: Session, lines: list[tuple[uuid.UUID, int]]) -> str | None:
    """One conditional UPDATE per line, in product order (no deadlocks between orders);
    the product id of the first line that could not be reserved, else None."""
    connection = session.connection()
    for product_id, quantity in lines:
        if connection.execute(*stock.reserve(product_id, quantity)).first() is None:
            return str(product_id)
    return None
