"""``POST /v1/orders/{id}/cancel``: the customer changes their mind before shipping.

Decided at once, under the order's row lock, by the same plan the saga's compensation
runs (``pipelines.compensation``): the stock is released in the same transaction, the
order becomes ``cancelled``, and the refund (if any money was or may yet be taken) and
the e-mail go out through the outbox. Once some packages of several have left, it cancels
the units still waiting in the others; once all have, it is a 409. With
``{"lines": [...]}`` only those units are cancelled (``api.shared.line_cancel``).
Cancelling a cancelled order answers the order again. An operator's cancel
(``api.desk.actions``) runs the same ``cancel_locked`` (``api.shared.cancellation``).
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from api.shared.context import SESSIONS, SETTINGS
from api.shared.errors import not_found
from api.shared.jsonio import read_optional_model, respond
from api.shared.line_cancel import cancel_lines_locked, cancel_unshipped_locked
from api.shared.order_lookup import order_id
from api.shared.principal import authenticate
from api.shared.schemas import OrderCancel
from fulfillment.models import Order
from fulfillment.order_view import order_out
from fulfillment.states import OrderStatus as S
from monitoring import metrics


async def cancel_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    body_in = await read_optional_model(request, OrderCancel)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(
            select(Order).where(Order.id == order_id(request)).with_for_update()
        )
        if order is None or (order.customer_id != principal.user_id and not principal.is_admin):
            raise not_found("order")
        capture = request.app[SETTINGS].payment_capture
        if body_in is None:
            before = await cancel_unshipped_locked(session, order, step="customer_cancel",
                                                   capture=capture)  # fmt: skip
            await session.refresh(order, ["lines", "updated_at"])
        else:
            wanted = [(str(line.product_id), line.quantity) for line in body_in.lines]
            before = await cancel_lines_locked(session, order, wanted, step="customer_cancel",
                                               capture=capture)  # fmt: skip
            await session.refresh(order, ["lines", "updated_at"])
        body = order_out(order)
    if before is not None:
        metrics.order_transitions_total.labels(before, S.CANCELLED.value).inc()
    return respond(body)
