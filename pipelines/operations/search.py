"""Finding orders the way an operator asks: the filters of ``GET /v1/admin/orders`` and
``fulfillment orders list``, as SQL conditions both run (async or not), newest first.

Each filter has an index (migration 0009 says which): ``statuses``, ``needs_attention``
and ``stalled_minutes`` use ``ix_orders_status_changed``; dates and the order of the
list ``ix_orders_created``; ``email`` the users' lower-case e-mail index, then
``ix_orders_customer_created``; ``product`` ``ix_order_lines_product``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from fulfillment.db import create_sync_db_engine
from fulfillment.models import Order, OrderLine, Product, User
from fulfillment.money import format_minor
from fulfillment.settings import Settings
from fulfillment.states import TERMINAL
from fulfillment.states import OrderStatus as S

#: Statuses of orders that are not finished: the ones that can stall.
LIVE = tuple(state.value for state in S if state not in TERMINAL)


@dataclass(frozen=True)
class OrderFilter:
    """What the orders must all have; None (or empty) asks nothing."""

    statuses: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    #: The customer's e-mail, in any case.
    email: str | None = None
    #: A product's id or SKU.
    product: str | None = None
    needs_attention: bool | None = None
    #: A live order whose status has not changed for this many minutes.
    stalled_minutes: int | None = None


def conditions(wanted: OrderFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if wanted.statuses:
        found.append(Order.status.in_(wanted.statuses))
    if wanted.created_from is not None:
        found.append(Order.created_at >= wanted.created_from)
    if wanted.created_to is not None:
        found.append(Order.created_at <= wanted.created_to)
    if wanted.email is not None:
        customers = select(User.id).where(func.lower(User.email) == wanted.email.strip().lower())
        found.append(Order.customer_id.in_(customers))
    if wanted.product is not None:
        found.append(Order.id.in_(
            select(OrderLine.order_id).where(OrderLine.product_id.in_(_products(wanted.product)))
        ))  # fmt: skip
    if wanted.needs_attention is not None:
        attention = Order.status == S.NEEDS_ATTENTION.value
        found.append(attention if wanted.needs_attention else ~attention)
    if wanted.stalled_minutes is not None:
        cutoff = func.now() - timedelta(minutes=wanted.stalled_minutes)
        found += [Order.status.in_(LIVE), Order.status_changed_at < cutoff]
    return found


def _products(given: str) -> Select[Any]:
    """The product a filter names: by id, or by its SKU."""
    try:
        by_id = Product.id == uuid.UUID(given)
    except ValueError:
        return select(Product.id).where(Product.sku == given)
    return select(Product.id).where(or_(by_id, Product.sku == given))


def counted(wanted: OrderFilter) -> Select[Any]:
    """How many orders match."""
    return select(func.count()).select_from(Order).where(*conditions(wanted))


def page(wanted: OrderFilter, *, offset: int, limit: int) -> Select[Any]:
    """(order, customer) rows that match, newest first."""
    return (
        select(Order, User).join(User, User.id == Order.customer_id).where(*conditions(wanted))
        .order_by(Order.created_at.desc(), Order.id.desc()).offset(offset).limit(limit)
    )  # fmt: skip


def find_orders(settings: Settings, wanted: OrderFilter, *, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` orders that match, as plain rows (``fulfillment orders list``)."""
    engine = create_sync_db_engine(settings, pool_size=1)
    try:
        with Session(engine) as session:
            return [{
                "id": str(order.id), "status": order.status, "email": customer.email,
                "created_at": order.created_at.isoformat(),
                "status_changed_at": order.status_changed_at.isoformat(),
                "total": format_minor(order.total_amount, order.currency),
                "currency": order.currency, "last_error": order.last_error,
            } for order, customer in session.execute(page(wanted, offset=0, limit=limit))]  # fmt: skip
    finally:
        engine.dispose()
