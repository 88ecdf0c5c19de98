"""Returns: ``POST /v1/orders/{id}/returns`` (the customer), ``GET`` the same (the
customer or an admin), and ``POST /v1/admin/returns/{id}/receive`` (the warehouse).

A return is accepted under the order's row lock, for a ``delivered`` order within
``RETURN_WINDOW_DAYS`` of its delivery, and never for more units of a line than were
delivered and not yet asked back by another return (``409 return_exceeds_quantity``).
The message that buys its label (``create_return_label``) goes through the outbox in
the same commit. The ``Idempotency-Key`` header is optional: the same key and body
answers the first return again; the same key with another body is ``422``.

A receipt is taken under the order's and then the return's row lock (the order the
label step locks them in), once: a second receipt answers the return as it is. The
restocked units go back on hand with a ``returned`` movement, the damaged ones get a
``damaged`` movement and no stock, and the received lines are refunded at the price
they were ordered, by the admin refund's rule (``pipelines.payments.refunds``; request key
``return_<id>``), whose Stripe call follows through the outbox (``process_refund``).
The return is ``received`` until that refund succeeds, then ``refunded``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import select

from api.returns.schemas import ReturnCreate, ReturnList, ReturnReceive, return_out
from api.shared.context import SESSIONS, SETTINGS
from api.shared.errors import ApiError, ErrorCode, not_found, path_uuid
from api.shared.idempotency import idempotency_key, request_fingerprint, same_request
from api.shared.jsonio import parse, read_json, respond
from api.shared.location_lookup import known_location
from api.shared.order_lookup import load_visible_order, order_id
from api.shared.principal import authenticate
from fulfillment.messages import CREATE_RETURN_LABEL
from fulfillment.models import Order, Refund, Return
from fulfillment.outbox import outbox_insert
from fulfillment.refunds import RefundExceedsQuantity, price_refund_lines
from fulfillment.returns import (
    RECEIVABLE,
    ReturnLineRefused,
    advance,
    receipt_statements,
    received_lines,
    restock_locations,
    returnable_lines,
)
from fulfillment.returns import ReturnStatus as R
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import note
from pipelines.payments.refunds import RefundRefused, accept_refund


async def _object(request: web.Request) -> dict:
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "the body must be a JSON object")
    return raw


async def create_return(request: web.Request) -> web.Response:
    principal = authenticate(request)
    key = idempotency_key(request)
    raw = await _object(request)
    body = parse(ReturnCreate, raw)
    fingerprint = request_fingerprint(raw)
    window = timedelta(days=request.app[SETTINGS].return_window_days)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(
            select(Order).where(Order.id == order_id(request)).with_for_update()
        )
        if order is None or order.customer_id != principal.user_id:
            raise not_found("order")
        returns = (await session.scalars(select(Return).where(Return.order_id == order.id))).all()
        earlier = next((r for r in returns if key is not None and r.request_key == key), None)
        if earlier is not None:
            same_request(earlier.request_hash, fingerprint)
            return respond(return_out(earlier), status=201)
        now = datetime.now(UTC)
        if order.status != S.DELIVERED.value or order.delivered_at is None:
            raise ApiError(409, ErrorCode.ORDER_NOT_DELIVERED,
                           "only a delivered order's units can be returned",
                           {"status": order.status})  # fmt: skip
        if now > order.delivered_at + window:
            raise ApiError(409, ErrorCode.RETURN_WINDOW_CLOSED,
                           f"returns are accepted within {window.days} days of delivery",
                           {"delivered_at": order.delivered_at.isoformat(),
                            "return_window_days": window.days})  # fmt: skip
        wanted = [(str(line.product_id), line.quantity) for line in body.lines]
        try:
            lines = returnable_lines(order, list(returns), wanted)
        except ReturnLineRefused as exc:
            raise _refused(exc) from None
        row = Return(id=uuid.uuid4(), order_id=order.id, lines=lines, reason=body.reason,
                     status=R.REQUESTED.value, request_key=key, request_hash=fingerprint,
                     received_lines=[], created_at=now, updated_at=now)  # fmt: skip
        session.add(row)
        session.add(note(order, step="return_requested", now=now, outcome="accepted",
                         details={"return": str(row.id), "lines": lines}))  # fmt: skip
        await session.execute(outbox_insert(CREATE_RETURN_LABEL, return_id=str(row.id)))
        await session.flush()
        out = return_out(row)
    return respond(out, status=201)


def _refused(exc: ReturnLineRefused) -> ApiError:
    return ApiError(409 if exc.conflict else 422, ErrorCode(exc.code), str(exc), exc.details)


async def list_returns(request: web.Request) -> web.Response:
    principal = authenticate(request)
    async with request.app[SESSIONS]() as session:
        order = await load_visible_order(session, principal, order_id(request))
        rows = (await session.scalars(
            select(Return).where(Return.order_id == order.id).order_by(Return.created_at, Return.id)
        )).all()  # fmt: skip
        out = ReturnList(items=[return_out(row) for row in rows])
    return respond(out)


def _return_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "return_id", "return")


async def receive_return(request: web.Request) -> web.Response:
    principal = authenticate(request)
    body = parse(ReturnReceive, await _object(request))
    rid = _return_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        found = await session.scalar(select(Return.order_id).where(Return.id == rid))
        if found is None:
            raise not_found("return")
        order = await session.scalar(select(Order).where(Order.id == found).with_for_update())
        row = await session.scalar(select(Return).where(Return.id == rid).with_for_update()
                                   .execution_options(populate_existing=True))  # fmt: skip
        if order is None or row is None:
            raise not_found("return")
        if R(row.status) in (R.RECEIVED, R.REFUNDED):  # received already: the same answer
            return respond(return_out(row))
        if R(row.status) not in RECEIVABLE:
            raise ApiError(409, ErrorCode.RETURN_NOT_RECEIVABLE,
                           f"a {row.status} return cannot be received", {"status": row.status})  # fmt: skip
        counted = [(str(line.product_id), line.quantity, line.condition) for line in body.lines]
        try:
            received = received_lines(row, counted)
        except ReturnLineRefused as exc:
            raise _refused(exc) from None
        refunds = (await session.scalars(select(Refund).where(Refund.order_id == order.id))).all()
        amount, lines = _priced(received, order, refunds)
        try:
            refund, refunding = accept_refund(order, amount=amount, source="return",
                                              request_key=f"return_{row.id}", lines=lines,
                                              reason=row.reason or "returned",
                                              requested_by=principal.user_id)  # fmt: skip
        except RefundRefused as exc:
            raise ApiError(409, ErrorCode(exc.code), str(exc), exc.details) from None
        at = restock_locations(order)
        if body.location_id is not None:
            await known_location(session, body.location_id)
            at = dict.fromkeys(at.keys() | {line["product_id"] for line in received},
                               body.location_id)  # fmt: skip
        for statement, params in receipt_statements(row.id, received, at):
            await session.execute(statement, params)
        for statement in refunding:
            await session.execute(statement)
        now = datetime.now(UTC)
        advance(row, R.RECEIVED)
        row.received_lines, row.received_at, row.refund_id, row.updated_at = (
            received, now, refund["id"], now)  # fmt: skip
        session.add(note(order, step="return_received", now=now, outcome="received",
                         details={"return": str(row.id), "received": received,
                                  "refund": str(refund["id"]), "amount": amount,
                                  "admin": str(principal.user_id)}))  # fmt: skip
        await session.flush()
        out = return_out(row)
    return respond(out)


def _priced(received: list[dict], order: Order, refunds) -> tuple[int, list[dict]]:
    """(amount, refund lines) of a receipt: each product's units, over both conditions and
    by product id, at the refund-by-lines rule (``fulfillment.refunds``)."""
    units: dict[str, int] = {}
    for line in received:
        units[line["product_id"]] = units.get(line["product_id"], 0) + line["quantity"]
    try:
        return price_refund_lines(order, refunds, sorted(units.items()))
    except RefundExceedsQuantity as exc:
        raise ApiError(409, ErrorCode(exc.code), str(exc), exc.details) from None
