"""The operator desk, read side: ``GET /v1/admin/orders`` (every order, filtered, newest
first) and ``GET /v1/admin/orders/{id}`` (one order with its customer, shipment, e-mails,
whole timeline and dead letters). The actions are in ``api.desk.actions``.

The filters are ``pipelines.operations.search``'s, which ``fulfillment orders list`` runs too
(each has an index; that module says which).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import select

from api.desk.schemas import (
    DeadLetterOut,
    DeskOrderDetail,
    DeskOrderOut,
    DeskOrderPage,
    DeskOrderQuery,
    EmailOut,
    ShipmentOut,
    desk_order_fields,
)
from api.shared.context import DEAD_LETTERS, SESSIONS
from api.shared.errors import not_found
from api.shared.jsonio import parse, refuse_unstorable, respond, unstorable_fields
from api.shared.order_lookup import order_id
from api.shared.schemas import OrderEventOut
from fulfillment.models import Notification, Order, OrderEvent, Refund, Shipment, User
from fulfillment.order_view import order_out
from pipelines.operations import search
from pipelines.operations.search import OrderFilter


def desk_query(request: web.Request) -> DeskOrderQuery:
    """The filters from the query string: ``status`` may repeat and hold commas; a bad
    value is a 422 naming the parameter."""
    query: dict[str, Any] = dict(request.query)
    statuses = [part for value in request.query.getall("status", [])
                for part in value.split(",") if part]  # fmt: skip
    if "status" in query:
        query["status"] = statuses
    refuse_unstorable(unstorable_fields(query))
    return parse(DeskOrderQuery, query)


def order_filter(query: DeskOrderQuery) -> OrderFilter:
    return OrderFilter(
        statuses=tuple(query.status or ()), created_from=query.created_from,
        created_to=query.created_to, email=query.email, product=query.product,
        needs_attention=query.needs_attention, stalled_minutes=query.stalled_minutes,
    )  # fmt: skip


def desk_order(order: Order, customer: User, *, refunds: list | None = None) -> DeskOrderOut:
    """The order as the API shows it (its payment included, and its refunds when given),
    with what the desk adds."""
    shown = order_out(order, refunds=refunds).model_dump()
    return DeskOrderOut(**shown, **desk_order_fields(order, customer))


async def list_orders(request: web.Request) -> web.Response:
    query = desk_query(request)
    wanted = order_filter(query)
    async with request.app[SESSIONS]() as session:
        total = await session.scalar(search.counted(wanted))
        rows = await session.execute(search.page(wanted, offset=query.offset, limit=query.limit))
        items = [desk_order(order, customer) for order, customer in rows.all()]
    return respond(DeskOrderPage(items=items, total=total or 0, page=query.page, limit=query.limit))


async def get_order(request: web.Request) -> web.Response:
    oid = order_id(request)
    async with request.app[SESSIONS]() as session:
        row = (await session.execute(
            select(Order, User).join(User, User.id == Order.customer_id).where(Order.id == oid)
        )).first()  # fmt: skip
        if row is None:
            raise not_found("order")
        order, customer = row
        shipments = await session.scalars(select(Shipment).where(Shipment.order_id == oid))
        mails = await session.scalars(
            select(Notification).where(Notification.order_id == oid).order_by(Notification.id)
        )
        events = await session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == oid).order_by(OrderEvent.id)
        )
        refunds = await session.scalars(
            select(Refund).where(Refund.order_id == oid).order_by(Refund.created_at)
        )
        detail = DeskOrderDetail(
            **desk_order(order, customer, refunds=refunds.all()).model_dump(),
            shipments=[ShipmentOut.model_validate(s, from_attributes=True) for s in shipments],
            emails=[EmailOut.model_validate(mail, from_attributes=True) for mail in mails],
            timeline=[OrderEventOut.model_validate(e, from_attributes=True) for e in events],
            dead_letters=await dead_letters_of(request, oid),
        )  # fmt: skip
    return respond(detail)


async def dead_letters_of(request: web.Request, oid: uuid.UUID) -> list[DeadLetterOut]:
    """The order's dead letters (none where the broker keeps no dead-letter queues we
    can read, as with RabbitMQ)."""
    store = request.app[DEAD_LETTERS]
    if store is None:
        return []
    letters = await asyncio.to_thread(store.list)
    return [DeadLetterOut.model_validate(letter.as_dict()) for letter in letters
            if letter.kwargs.get("order_id") == str(oid)]  # fmt: skip
