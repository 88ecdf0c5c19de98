"""``POST /v1/orders/{id}/cancel``: the customer changes their mind before shipping.

Decided at once, under the order's row lock, by the same plan the saga's compensation
runs (``pipelines.compensation``): the stock is released in the same transaction, the
order becomes ``cancelled``, and the refund (if any money was or may yet be taken) and
the e-mail go out through the outbox. After shipping it is a 409.
Cancelling a cancelled order answers the order again. An operator's cancel
(``api.desk.actions``) runs the same ``cancel_locked``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.orders.views import order_id, order_out
from api.shared.context import SESSIONS
from api.shared.errors import ApiError, not_found
from api.shared.jsonio import respond
from api.users.auth import authenticate
from fulfillment.messages import SEND_NOTIFICATION
from fulfillment.models import Order
from fulfillment.notifications import intent_insert
from fulfillment.outbox import outbox_insert
from fulfillment.states import CANCELLABLE
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import transition
from monitoring import metrics
from pipelines import compensation as plans


def _cancellable(order: Order) -> bool:
    """Nothing has shipped: judged by the status a paused order (waiting for an operator,
    or held by one) was paused in."""
    status = S(order.status)
    paused_in = {S.NEEDS_ATTENTION: order.attention_from, S.ON_HOLD: order.held_from}
    if status in paused_in:
        return paused_in[status] is not None and S(paused_in[status]) in CANCELLABLE
    return status in CANCELLABLE


async def cancel_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(
            select(Order).where(Order.id == order_id(request)).with_for_update()
        )
        if order is None or (order.customer_id != principal.user_id and not principal.is_admin):
            raise not_found("order")
        before = await cancel_locked(session, order, step="customer_cancel")
        body = order_out(order)
    if before is not None:
        metrics.order_transitions_total.labels(before, S.CANCELLED.value).inc()
    return respond(body)


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
    if not _cancellable(order):
        raise ApiError(409, "order_not_cancellable",
                       f"an order that is {order.status} can no longer be cancelled",
                       {"status": order.status})  # fmt: skip
    await session.refresh(order, ["lines"])
    plan = plans.customer_cancel(order)
    lines = [(line.product_id, line.quantity) for line in order.lines]
    for statement, params in plans.undo(order, lines, plan):
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
