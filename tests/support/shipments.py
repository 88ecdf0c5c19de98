"""An order's one shipment (an order from one location ships one package)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from fulfillment.models import Shipment


def the_shipment(session, order_id: uuid.UUID) -> Shipment | None:
    """The order's shipment; fails when the order has more than one."""
    shipments = session.scalars(select(Shipment).where(Shipment.order_id == order_id)).all()
    assert len(shipments) <= 1, f"order {order_id} has {len(shipments)} shipments"
    return shipments[0] if shipments else None
