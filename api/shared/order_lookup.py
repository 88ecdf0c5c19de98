"""An order named by a path (``{order_id}``), and which orders a caller may see: one
rule for every feature that serves an order (orders, returns, refunds, the desk)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.errors import not_found, path_uuid
from api.shared.tokens import Principal
from fulfillment.models import Order


def order_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "order_id", "order")


async def load_visible_order(session: AsyncSession, principal: Principal, oid: uuid.UUID) -> Order:
    """The order if the caller may see it; another customer's order is a 404, so its
    existence is never confirmed."""
    order = await session.get(Order, oid)
    if order is None or (order.customer_id != principal.user_id and not principal.is_admin):
        raise not_found("order")
    return order
