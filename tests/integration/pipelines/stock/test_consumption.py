"""Stock leaving with the shipment (``pipelines.stock.consumption``): the inventory row,
the hottest lock there is, is locked by the shipment's commit only, in its last round
trip, never while the step runs; the units leave once."""

from __future__ import annotations

import psycopg
from sqlalchemy import func, select

from fulfillment.models import StockMovement
from fulfillment.states import OrderStatus as S
from pipelines.outcome import SUCCESS
from pipelines.shipping.ship import ship_order
from tests.support.interleave import hold, in_thread
from tests.support.steps import DEADLINE, given_order, status, stock


def _lock_free(settings, product_id) -> bool:
    """Whether another transaction can take the product's inventory row at once."""
    with psycopg.connect(settings.libpq_url) as conn:
        try:
            conn.execute("SELECT 1 FROM inventory WHERE product_id = %s FOR UPDATE NOWAIT",
                         (product_id,))  # fmt: skip
            return True
        except psycopg.errors.LockNotAvailable:
            return False


def test_a_shipment_holds_the_inventory_row_only_in_its_commit(deps, engine, settings):
    # Given a packed order for 2 of 5 units (reserved), its step held once the label is
    # stored, the order moved and the stock consumed, just before its commit
    order_id, product = given_order(deps, engine, at=S.FULFILLING, quantity=2, on_hand=5)
    assert stock(engine, product) == (5, 2)
    with hold("ship_order.before_commit") as point:
        shipping = in_thread(lambda: ship_order(deps, order_id))
        point.wait_reached()

        # Then another order can take the product's inventory row meanwhile: the step
        # holds the order, not the stock
        assert _lock_free(settings, product)
        point.release()
        assert shipping.result(DEADLINE) == SUCCESS

    # and the commit took the units out once, with their movement
    assert status(engine, order_id) == S.SHIPPED
    assert stock(engine, product) == (3, 0)
    with engine.connect() as conn:
        moved = conn.scalar(select(func.sum(StockMovement.delta)).where(
            StockMovement.reason == "shipped", StockMovement.product_id == product))  # fmt: skip
    assert moved == -2
    # a second run of the step (a redelivery) takes nothing more
    ship_order(deps, order_id)
    assert stock(engine, product) == (3, 0)
