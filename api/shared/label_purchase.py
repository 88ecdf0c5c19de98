"""A change to what an order's label is bought for (its address, its lines, the location
it ships from) while ``ship_order`` may be buying that label (the purchase holds no row
lock: ``pipelines.shipping.ship``): one check for every such writer."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.errors import ApiError, ErrorCode
from fulfillment.locks import LABEL_PURCHASE_IDLE
from fulfillment.models import Order


async def no_label_in_flight(session: AsyncSession, order: Order, *, message: str) -> None:
    """``409 label_being_bought`` (with ``message``) at once while the label is being
    bought; otherwise a shared hold keeps any purchase from starting before the caller's
    transaction ends, so the next one reads what the caller changed."""
    if not await session.scalar(LABEL_PURCHASE_IDLE, {"order_id": str(order.id)}):
        raise ApiError(409, ErrorCode.LABEL_BEING_BOUGHT, message, {"status": order.status})
