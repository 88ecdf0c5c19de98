"""Step 1: reserve every line or none. Out of stock means rejected, and the customer
is told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from fulfillment import stock
from fulfillment.messages import REQUEST_PAYMENT
from fulfillment.models import Order
from fulfillment.states import OrderStatus as S
from integrations.ports import NotificationKind
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    lock_order,
    move,
    send_later,
    tell_customer,
)
from pipelines.deps import Deps

STEP = "reserve_inventory"


def reserve_inventory(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.PENDING:
            return SKIPPED  # done already, or moved on: a duplicate message
        short = _reserve_all_or_none(session, order)
        if short:
            move(
                session,
                order,
                S.REJECTED,
                step=STEP,
                attempt=attempt,
                outcome="failed",
                error="out of stock",
                details={"product_ids": short},
            )
            tell_customer(session, order, NotificationKind.CANCELLED, reason="out_of_stock")
            return FAILED
        order.stock_state = "reserved"
        order.reserved_until = deps.now() + timedelta(seconds=deps.settings.reservation_ttl_seconds)
        move(session, order, S.RESERVED, step=STEP, attempt=attempt)
        send_later(session, REQUEST_PAYMENT, order_id=order.id)
    return SUCCESS


def _reserve_all_or_none(session: Session, order: Order) -> list[str]:
    """One conditional UPDATE per line, in product order (no deadlocks between orders).
    On the first short line everything this order took is rolled back; returns the
    product ids that were short."""
    savepoint = session.begin_nested()
    for line in sorted(order.lines, key=lambda line: line.product_id):
        if session.execute(stock.reserve(line.product_id, line.quantity)).first() is None:
            savepoint.rollback()
            return [str(line.product_id)]
    savepoint.commit()
    return []
