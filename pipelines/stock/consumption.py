"""Stock leaving the warehouse with the shipment (``consume_stock``), and the rule every
writer of an inventory row keeps: touch it last in the transaction (``lock_stock_last``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fulfillment import stock
from fulfillment.stock import StockState
from pipelines.common import order_lines, write_at_commit
from pipelines.locked_order import LockedOrder


def consume_stock(session: Session, order: LockedOrder, location: str | None = None) -> None:
    """The reserved units leave their locations with the shipment, once: all of them, or
    (an order in several packages) those of the package at ``location``, recorded in
    ``orders.parcels`` before this call; the order's stock is consumed once every
    package's is. The movements and the inventory rows are written with the commit
    (``write_at_commit``): the rows are locked by the server just before the COMMIT,
    in the same round trip, never while this process runs. A statement of the step
    that must follow them sends them first (``send_queued_writes``)."""
    if order.stock_state != StockState.RESERVED:
        return
    held = stock.held_by(order, order_lines(session, order.id), leaving=location)
    leaving = [h for h in held if location is None or str(h.location_id) == location]
    for h in leaving:
        write_at_commit(session, *stock.movement(h.product_id, -h.quantity, "shipped",
                                                 order_id=order.id, location_id=h.location_id))  # fmt: skip
    if len(leaving) == len(held):
        order.stock_state = StockState.CONSUMED
    for h in leaving:  # (product, location) order: see stock.held_by
        write_at_commit(session, *stock.consume(h.product_id, h.quantity, h.location_id))


def lock_stock_last(session: Session) -> None:
    """Send everything else the transaction writes before touching an inventory row.
    A popular product's row is the hottest lock in the system: every order for it
    reserves and consumes there, so the row must be held only from its UPDATE to the
    COMMIT, not while the rest of the step talks to the database."""
    session.flush()
