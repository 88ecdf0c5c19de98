"""A pending order written as the API writes it, placed by a known request: for the tests
that follow a request's id along the roads an order's messages take."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from fulfillment.models import Inventory, Order, OrderEvent, OrderLine, Product, User
from tests.support.storefront import ADDRESS

TRACE = "trace-placed-order"


def placed_order(engine, *, request_id: str | None = TRACE) -> str:
    """A pending order as the API writes it, placed by request ``request_id``."""
    with Session(engine) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:10]}@example.com", password_hash="-",
                    first_name="Ada", last_name="Lovelace")  # fmt: skip
        product = Product(sku=uuid.uuid4().hex[:12], name="Mug", price=12, currency="usd",
                          category="kitchen")  # fmt: skip
        session.add_all([user, product])
        session.flush()
        session.add(Inventory(product_id=product.id, on_hand=5))
        order = Order(customer_id=user.id, currency="usd", total_amount=1200,
                      shipping_address=dict(ADDRESS), payment_method="pm_card_visa",
                      request_id=request_id, lines=[OrderLine(
                          position=1, product_id=product.id, sku=product.sku, name="Mug",
                          quantity=1, unit_price=12, unit_amount=1200)])  # fmt: skip
        session.add(order)
        session.flush()
        session.add(OrderEvent(order_id=order.id, step="accept", to_status="pending"))
        return str(order.id)
