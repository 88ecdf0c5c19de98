"""``POST /v1/orders/{id}/cancel``: the customer changes their mind before shipping.

Decided at once, under the order's row lock: the stock is released in the same
transaction, the order becomes ``cancelled``, and the refund (if any money was or may
yet be taken) and the e-mail go out through the outbox. After shipping it is a 409.
Cancelling a cancelled order answers the order again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select

from api.auth import authenticate
from api.context import SESSIONS
from api.errors import ApiError, not_found
from api.jsonio import respond
from api.orders import order_id, order_out
from fulfillment import stock
from fulfillment.messages import REFUND_PAYMENT, SEND_NOTIFICATION
from fulfillment.models import Order
from fulfillment.notifications import intent_insert
from fulfillment.outbox import outbox_insert
from fulfillment.states import CANCELLABLE
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import transition
from monitoring import metrics


def _cancellable(order: Order) -> bool:
    status = S(order.status)
    if status == S.NEEDS_ATTENTION:
        return order.attention_from is not None and S(order.attention_from) in CANCELLABLE
    return status in CANCELLABLE


async def cancel_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(
            select(Order).where(Order.id == order_id(request)).with_for_update()
        )
        if order is None or (order.customer_id != principal.user_id and not principal.is_admin):
            raise not_found("order")
        if order.status == S.CANCELLED:
            return respond(order_out(order))
        if not _cancellable(order):
            raise ApiError(409, "order_not_cancellable",
                           f"an order that is {order.status} can no longer be cancelled",
                           {"status": order.status})  # fmt: skip
        await session.refresh(order, ["lines"])
        if order.stock_state == "reserved":
            for line in sorted(order.lines, key=lambda line: line.product_id):
                await session.execute(stock.release(line.product_id, line.quantity))
            order.stock_state = "released"
        money_possible = order.status != S.PENDING or order.payment_intent_id is not None
        before = order.status
        session.add(transition(order, S.CANCELLED, step="customer_cancel", now=datetime.now(UTC)))
        if money_possible:
            order.refund_due = True  # the refund step finds out whether anything was paid
            await session.execute(outbox_insert(REFUND_PAYMENT, order_id=str(order.id)))
        notification_id = await session.scalar(
            intent_insert("cancelled", user_id=order.customer_id, order_id=order.id,
                          data={"reason": "customer_request"})
        )  # fmt: skip
        if notification_id is not None:
            await session.execute(
                outbox_insert(SEND_NOTIFICATION, notification_id=str(notification_id))
            )
        await session.flush()
        await session.refresh(order, ["updated_at"])
        body = order_out(order)
    metrics.order_transitions_total.labels(before, S.CANCELLED.value).inc()
    return respond(body)
