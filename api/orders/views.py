"""Orders: place one (once, whatever the client retries), list, read, follow."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from api.orders.placement import Placement
from api.orders.schemas import OrderCreate, OrderEventList, OrderPage
from api.shared.context import ORDER_WRITER, SESSIONS
from api.shared.errors import ApiError, ErrorCode
from api.shared.idempotency import idempotency_key, request_fingerprint
from api.shared.jsonio import parse, read_json, respond, respond_data
from api.shared.order_lookup import load_visible_order, order_id
from api.shared.paging import PageQuery, page_of, query_model
from api.shared.principal import authenticate
from api.shared.schemas import OrderEventOut
from fulfillment.models import Order, OrderEvent, Refund
from fulfillment.order_view import order_out
from fulfillment.outbox import current_request_id
from monitoring import metrics


async def create_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    key = idempotency_key(request)
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "the body must be a JSON object")
    body = parse(OrderCreate, raw)
    status, data, replayed = await request.app[ORDER_WRITER].place(Placement(
        customer_id=principal.user_id, body=body, key=key,
        fingerprint=request_fingerprint(raw) if key else "", path=request.path,
        request_id=current_request_id(),
    ))  # fmt: skip
    if replayed:
        return respond_data(data, status=status, headers={"Idempotent-Replayed": "true"})
    metrics.orders_created_total.inc()  # counted only once the commit succeeded
    return respond_data(data, status=status)


async def list_orders(request: web.Request) -> web.Response:
    principal = authenticate(request)
    query = query_model(request, PageQuery)
    mine = Order.customer_id == principal.user_id
    async with request.app[SESSIONS]() as session:
        orders, total = await page_of(session, Order, query, where=(mine,),
                                      order_by=(Order.created_at.desc(), Order.id))  # fmt: skip
        items = [order_out(o, owner=True) for o in orders]
    return respond(OrderPage(items=items, total=total, page=query.page, limit=query.limit))


async def get_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session:
        order = await load_visible_order(session, principal, order_id(request))
        refunds = await session.scalars(
            select(Refund).where(Refund.order_id == order.id).order_by(Refund.created_at)
        )
        owner = order.customer_id == principal.user_id
        return respond(order_out(order, owner=owner, refunds=refunds.all()))


async def list_order_events(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session:
        order = await load_visible_order(session, principal, order_id(request))
        events = await session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        )
        items = [OrderEventOut.model_validate(e, from_attributes=True) for e in events]
    return respond(OrderEventList(items=items))
