"""Step 1: reserve every line or none. Out of stock means rejected, and the customer
is told. The same message then charges the card (see ``pipelines.saga``). One pass
reserves every pending order waiting, in one commit, holding the inventory rows of the
pass's products at every location.

Each order's stock is planned across the locations that may ship it
(``fulfillment.allocation``) from what the locked rows hold, then taken with one
conditional UPDATE per (product, location), and the plan is kept on the order
(``orders.allocation``) for whoever later releases or consumes it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fulfillment import stock
from fulfillment.allocation import Place, Short, allocate, eligible, needed
from fulfillment.checkpoints import reach
from fulfillment.line_cancellation import remaining
from fulfillment.models import Inventory, Location
from fulfillment.states import OrderStatus as S
from fulfillment.stock import StockState
from integrations.ports import NotificationKind
from pipelines import locked_order, sql
from pipelines.common import (
    FAILED,
    SUCCESS,
    Savepoint,
    begin,
    lock_order,
    move,
    order_lines,
    unchanged,
)
from pipelines.deps import Deps
from pipelines.locked_order import ORDERS, LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.stock.consumption import lock_stock_last

STEP = "reserve_inventory"
#: Orders one reservation pass takes at most: the message's own, and the other pending
#: orders no other pass holds (their own messages then find them reserved and go on).
PASS_SIZE = 20

#: Other pending orders no other pass holds, oldest first.
_WAITING = (
    select(ORDERS).where(ORDERS.c.status == S.PENDING.value, ORDERS.c.id != bindparam("b_order"))
    .order_by(ORDERS.c.created_at).limit(PASS_SIZE - 1).with_for_update(skip_locked=True)
)  # fmt: skip
#: The inventory rows of a pass at every location, locked in (product, location) order,
#: the order every writer of several rows keeps: two passes never deadlock.
_LOCK_STOCK = (
    select(Inventory.product_id, Inventory.location_id, Inventory.on_hand - Inventory.reserved)
    .where(Inventory.product_id.in_(bindparam("b_products", expanding=True)))
    .order_by(Inventory.product_id, Inventory.location_id).with_for_update()
)  # fmt: skip
#: The locations stock may be taken from. Read once a pass: a location deactivated
#: meanwhile may still take this pass's orders, as if they had come a moment earlier.
_PLACES = select(Location.id, Location.priority, Location.ships_to).where(Location.active)


def reserve_inventory(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """One pass reserves the message's order and the other pending orders waiting, in
    one commit, each all-or-nothing: an order short on a line rolls back to its own
    savepoint and is rejected. Everything else is written first and the inventory rows
    are locked last, in product order, just before the commit (see ``lock_stock_last``).
    The outcome is the message's own order's."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status != S.PENDING:
            return unchanged(session)  # done already, or moved on: a duplicate message
        waiting = sql.rows(session, _WAITING, {"b_order": order.id})
        orders = [order, *locked_order.held(session, waiting)]
        lines = {o.id: remaining(order_lines(session, o.id), o.cancelled_lines) for o in orders}
        lock_stock_last(session)
        products = sorted({product for held in lines.values() for product, _ in held})
        available = {(p, loc): free for p, loc, free in
                     session.connection().execute(_LOCK_STOCK, {"b_products": products})}  # fmt: skip
        places = [Place(i, priority, tuple(ships_to))
                  for i, priority, ships_to in session.connection().execute(_PLACES)]  # fmt: skip
        outcomes = [_reserve_one(session, o, lines[o.id], places, available,
                                 deps=deps, attempt=attempt) for o in orders]  # fmt: skip
        reach("reserve_inventory.before_commit")  # the inventory rows are held
    return outcomes[0]


def _reserve_one(
    session: Session,
    order: LockedOrder,
    lines: list[tuple[uuid.UUID, int]],
    places: list[Place],
    available: dict[tuple[uuid.UUID, uuid.UUID], int],
    *,
    deps: Deps,
    attempt: int,
) -> str:
    country = str((order.shipping_address or {}).get("country", ""))
    try:
        plan = allocate(needed(lines), eligible(places, country), available,
                        deps.settings.allocation_strategy)  # fmt: skip
        short = None
    except Short as exc:
        plan, short = {}, str(exc.product_id)
    if short is None:
        reserving = Savepoint(session)
        order.stock_state = StockState.RESERVED
        order.reserved_until = deps.now() + timedelta(seconds=deps.settings.reservation_ttl_seconds)
        order.allocation = stock.allocation_json(
            stock.Held(p, loc, q) for (p, loc), q in plan.items()
        )
        move(session, order, S.RESERVED, step=STEP, attempt=attempt)
        locked_order.write_orders(session)
        short = _first_short(session, plan)
        if short is None:
            reserving.commit()
            for key, quantity in plan.items():
                available[key] -= quantity
            return SUCCESS
        reserving.rollback()
    move(session, order, S.REJECTED, step=STEP, attempt=attempt, outcome="failed",
         error="out of stock", details={"product_ids": [short]})  # fmt: skip
    tell_customer(session, order, NotificationKind.CANCELLED, reason="out_of_stock")
    return FAILED


def _first_short(session: Session, plan: dict[tuple[uuid.UUID, uuid.UUID], int]) -> str | None:
    """One conditional UPDATE per (product, location) of the plan, in that order; the
    product id of the first the location could not give after all (the plan was made
    from the rows this pass holds locked, so only a bug gets here), else None."""
    for (product_id, location_id), quantity in sorted(plan.items(), key=lambda kv: str(kv[0])):
        if sql.one(session, *stock.reserve(product_id, quantity, location_id)) is None:
            return str(product_id)
    return None
