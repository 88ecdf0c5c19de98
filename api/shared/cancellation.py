"""Cancelling a row-locked order by the customer-cancel plan (``pipelines.compensation``),
in the caller's transaction: the stock released, the order ``cancelled``, the refund and
the e-mail through the outbox. One rule for the customer's cancel (``api.orders.cancel``)
and the operator's (``api.desk.actions``); after shipping it is a 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.errors import ApiError, ErrorCode
from fulfillment import stock
from fulfillment.messages import SEND_NOTIFICATION
from fulfillment.models import Order
from fulfillment.notifications import intent_insert
from fulfillment.outbox import outbox_insert
from fulfillment.states import CANCELLABLE, UNSHIPPED_LEFT
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import transition
from pipelines import compensation as plans


def standing(order: Order) -> S | None:
    """Where the order stands on its way: its status, or for a paused order (waiting for
    an operator, or held by one) the status it was paused in (None if unknown)."""
    status = S(order.status)
    paused_in = {S.NEEDS_ATTENTION: order.attention_from, S.ON_HOLD: order.held_from}
    if status in paused_in:
        return None if paused_in[status] is None else S(paused_in[status])
    return status


def cancellable(order: Order) -> bool:
    """Nothing has shipped: judged by the status a paused order was paused in."""
    return standing(order) in CANCELLABLE


def some_unshipped(order: Order) -> bool:
    """Some units may not have shipped yet (``UNSHIPPED_LEFT``): nothing has, or some of
    several packages wait; judged by the status a paused order was paused in."""
    return standing(order) in UNSHIPPED_LEFT


async def cancel_locked(
    session: AsyncSession,
    order: Order,
    *,
    step: str,
    details: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str | None:
    """Cancel the row-locked ``order`` by the customer-cancel plan, in the caller's
    transaction; ``reason`` replaces the plan's in the e-mail. Returns the status it
    left, or None when it was cancelled already (nothing done again); 409 when it has
    shipped or ended otherwise. The caller counts the move once it has committed."""
    if order.status == S.CANCELLED:
        return None
    if not cancellable(order):
        raise ApiError(409, ErrorCode.ORDER_NOT_CANCELLABLE,
                       f"an order that is {order.status} can no longer be cancelled",
                       {"status": order.status})  # fmt: skip
    await session.refresh(order, ["lines"])
    plan = plans.customer_cancel(order)
    held = stock.held_by(order, [(line.product_id, line.quantity) for line in order.lines])
    for statement, params in plans.undo(order, held, plan):
        await session.execute(statement, params)
    before = order.status
    session.add(transition(order, plan.target, step=step, now=datetime.now(UTC), details=details))
    order.held_from = None
    kind, data = plan.mail
    if reason is not None:
        data = {**data, "reason": reason}
    notification_id = await session.scalar(
        intent_insert(kind, user_id=order.customer_id, order_id=order.id, data=data)
    )
    if notification_id is not None:  # the API sends nothing itself: a worker does
        await session.execute(outbox_insert(SEND_NOTIFICATION, request_id=order.request_id,
                                            notification_id=str(notification_id)))  # fmt: skip
    await session.flush()
    await session.refresh(order, ["updated_at"])
    return before
