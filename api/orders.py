"""Orders: place one (once, whatever the client retries), list, read, follow."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import authenticate
from api.context import SESSIONS
from api.errors import ApiError, not_found
from api.idempotency import idempotency_key, request_fingerprint, run_once
from api.jsonio import parse, read_json, respond, respond_data
from api.paging import PageQuery, query_model
from api.schemas import (
    OrderCreate,
    OrderEventList,
    OrderEventOut,
    OrderItemOut,
    OrderOut,
    OrderPage,
)
from api.tokens import Principal
from fulfillment.messages import RESERVE_INVENTORY
from fulfillment.models import Order, OrderEvent, OrderLine, Product
from fulfillment.money import format_decimal, from_minor
from fulfillment.ordering import CatalogueEntry, MixedCurrencies, ProductsUnavailable, price_order
from fulfillment.outbox import outbox_insert
from fulfillment.states import OrderStatus
from monitoring import metrics


def order_out(order: Order) -> OrderOut:
    currency = order.currency
    return OrderOut(
        id=order.id,
        status=order.status,
        items=[
            OrderItemOut(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=format_decimal(line.unit_price, currency),
            )
            for line in order.lines
        ],
        total=format_decimal(from_minor(order.total_amount, currency), currency),
        total_amount=order.total_amount,
        currency=currency,
        shipping_address=order.shipping_address,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


async def create_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    key = idempotency_key(request)
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object")
    body = parse(OrderCreate, raw)

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        order = await _place(session, principal.user_id, body)
        return 201, order_out(order).model_dump(mode="json")

    async with request.app[SESSIONS]() as session, session.begin():
        if key is None:
            status, data = await work(session)
            response = respond_data(data, status=status)
        else:
            response = await run_once(
                request,
                session,
                user_id=principal.user_id,
                key=key,
                fingerprint=request_fingerprint(raw),
                work=work,
            )
    if response.status == 201 and "Idempotent-Replayed" not in response.headers:
        metrics.orders_created_total.inc()  # counted only once the commit succeeded
    return response


async def _place(session: AsyncSession, customer_id: uuid.UUID, body: OrderCreate) -> Order:
    requested = [(item.product_id, item.quantity) for item in body.items]
    rows = await session.scalars(
        select(Product).where(Product.id.in_([pid for pid, _ in requested]))
    )
    catalogue = {
        p.id: CatalogueEntry(p.id, p.sku, p.name, p.price, p.currency, p.is_active) for p in rows
    }
    try:
        priced = price_order(requested, catalogue)
    except ProductsUnavailable as exc:
        raise ApiError(
            422,
            "product_unavailable",
            "some products are unknown or not for sale",
            {"product_ids": [str(pid) for pid in exc.product_ids]},
        ) from None
    except MixedCurrencies as exc:
        raise ApiError(
            422, "currency_mismatch", str(exc), {"currencies": sorted(exc.currencies)}
        ) from None
    order = Order(
        id=uuid.uuid4(),
        customer_id=customer_id,
        status=OrderStatus.PENDING.value,
        currency=priced.currency,
        total_amount=priced.total_amount,
        shipping_address=body.shipping_address.model_dump(exclude_none=True),
        payment_method=body.payment_method,
        lines=[OrderLine(**asdict(line)) for line in priced.lines],
    )
    session.add(order)
    session.add(OrderEvent(order_id=order.id, step="accept", to_status=OrderStatus.PENDING.value))
    await session.execute(outbox_insert(RESERVE_INVENTORY, order_id=str(order.id)))
    await session.flush()
    await session.refresh(order, ["created_at", "updated_at"])
    return order


def order_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["order_id"])
    except ValueError:
        raise not_found("order") from None


async def load_visible_order(session: AsyncSession, principal: Principal, oid: uuid.UUID) -> Order:
    """The order if the caller may see it; another customer's order is a 404, so its
    existence is never confirmed."""
    order = await session.get(Order, oid)
    if order is None or (order.customer_id != principal.user_id and not principal.is_admin):
        raise not_found("order")
    return order


async def list_orders(request: web.Request) -> web.Response:
    principal = authenticate(request)
    query = query_model(request, PageQuery)
    mine = Order.customer_id == principal.user_id
    async with request.app[SESSIONS]() as session:
        total = await session.scalar(select(func.count()).select_from(Order).where(mine))
        orders = await session.scalars(
            select(Order)
            .where(mine)
            .order_by(Order.created_at.desc(), Order.id)
            .offset(query.offset)
            .limit(query.limit)
        )
        items = [order_out(o) for o in orders]
    return respond(OrderPage(items=items, total=total or 0, page=query.page, limit=query.limit))


async def get_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session:
        order = await load_visible_order(session, principal, order_id(request))
        return respond(order_out(order))


async def list_order_events(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session:
        order = await load_visible_order(session, principal, order_id(request))
        events = await session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        )
        items = [OrderEventOut.model_validate(e, from_attributes=True) for e in events]
    return respond(OrderEventList(items=items))
