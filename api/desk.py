"""The operator desk, read side: ``GET /v1/admin/orders`` (every order, filtered, newest
first) and ``GET /v1/admin/orders/{id}`` (one order with its customer, shipment, e-mails,
whole timeline and dead letters). The actions are in ``api.desk_actions``.

Each filter has an index (migration 0009 says which): ``status``, ``needs_attention``
and ``stalled_minutes`` use ``ix_orders_status_changed``; dates and the order of the
list ``ix_orders_created``; ``email`` the users' lower-case e-mail index, then
``ix_orders_customer_created``; ``product`` ``ix_order_lines_product``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, func, or_, select

from api.context import DEAD_LETTERS, SESSIONS
from api.desk_schemas import (
    DeskOrderDetail,
    DeskOrderOut,
    DeskOrderPage,
    DeskOrderQuery,
    EmailOut,
    ShipmentOut,
    desk_order_fields,
)
from api.errors import not_found
from api.jsonio import parse, refuse_unstorable, respond, unstorable_fields
from api.orders import order_id, order_out
from api.schemas import DeadLetterOut, OrderEventOut
from fulfillment.models import Notification, Order, OrderEvent, OrderLine, Product, Shipment, User
from fulfillment.states import TERMINAL
from fulfillment.states import OrderStatus as S

#: Statuses of orders that are not finished: the ones that can stall.
LIVE = tuple(state.value for state in S if state not in TERMINAL)


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


def filters(query: DeskOrderQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.status:
        conditions.append(Order.status.in_(query.status))
    if query.created_from is not None:
        conditions.append(Order.created_at >= query.created_from)
    if query.created_to is not None:
        conditions.append(Order.created_at <= query.created_to)
    if query.email is not None:
        customers = select(User.id).where(func.lower(User.email) == query.email.strip().lower())
        conditions.append(Order.customer_id.in_(customers))
    if query.product is not None:
        conditions.append(Order.id.in_(
            select(OrderLine.order_id).where(OrderLine.product_id.in_(_products(query.product)))
        ))  # fmt: skip
    if query.needs_attention is not None:
        attention = Order.status == S.NEEDS_ATTENTION.value
        conditions.append(attention if query.needs_attention else ~attention)
    if query.stalled_minutes is not None:
        cutoff = func.now() - timedelta(minutes=query.stalled_minutes)
        conditions += [Order.status.in_(LIVE), Order.status_changed_at < cutoff]
    return conditions


def _products(given: str):
    """The product a filter names: by id, or by its SKU."""
    try:
        by_id = Product.id == uuid.UUID(given)
    except ValueError:
        return select(Product.id).where(Product.sku == given)
    return select(Product.id).where(or_(by_id, Product.sku == given))


def desk_order(order: Order, customer: User) -> DeskOrderOut:
    return DeskOrderOut(**order_out(order).model_dump(), **desk_order_fields(order, customer))


async def list_orders(request: web.Request) -> web.Response:
    query = desk_query(request)
    conditions = filters(query)
    async with request.app[SESSIONS]() as session:
        total = await session.scalar(select(func.count()).select_from(Order).where(*conditions))
        rows = await session.execute(
            select(Order, User).join(User, User.id == Order.customer_id).where(*conditions)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .offset(query.offset).limit(query.limit)
        )  # fmt: skip
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
        detail = DeskOrderDetail(
            **desk_order(order, customer).model_dump(),
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
