"""Shipping addresses, checked by the carrier before anything is bought for them.

- ``POST /v1/addresses/verify`` (a signed-in customer, throttled per customer): the
  order's shipping address shape in, the carrier's verdict out. A verdict is always
  ``200``: ``{"deliverable": true, "address": {…as the carrier corrected it…},
  "problems": []}`` or ``{"deliverable": false, "address": null, "problems": [{"code",
  "field", "message"}]}``; malformed input is ``422 validation_error`` and the carrier
  out of reach ``503 carrier_unavailable``.
- ``PATCH /v1/orders/{id}/shipping_address`` (the order's owner, while nothing has
  shipped): validated as at placement and verified by the carrier; an undeliverable
  one is ``422 address_undeliverable`` with the problems and changes nothing. The
  corrected address is stored; an order waiting in ``address_invalid`` goes back to
  ``fulfilling`` with its ``ship_order`` message.
- ``POST /v1/admin/orders/{id}/address-override`` (an operator): an ``address_invalid``
  order ships to its address as it is, without the carrier's verification; the
  timeline records which operator said so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.orders.schemas import Address, AddressProblemOut, AddressVerdict
from api.shared.context import SESSIONS, SETTINGS
from api.shared.errors import ApiError, ErrorCode, not_found
from api.shared.jsonio import parse, read_json, respond
from api.shared.label_purchase import no_label_in_flight
from api.shared.order_lookup import order_id
from api.shared.principal import authenticate
from fulfillment.messages import SHIP_ORDER
from fulfillment.models import Order
from fulfillment.order_view import order_out
from fulfillment.outbox import outbox_insert
from fulfillment.states import CANCELLABLE
from fulfillment.states import OrderStatus as S
from fulfillment.transitions import note, transition
from integrations.easypost_gateway import EasyPostCarrier, build_easypost_carrier
from integrations.errors import ProviderError
from integrations.ports import AS_IS_KEY, AS_IS_VALUE, VerifiedAddress
from integrations.retry import RetryPolicy
from monitoring import metrics

#: The carrier the API asks about addresses (built when the app starts).
CARRIER = web.AppKey("carrier", EasyPostCarrier)
#: Seconds a client waits before asking again while the carrier is out of reach.
RETRY_AFTER = 5
#: A customer is waiting: one quick retry, then ``503 carrier_unavailable``.
INTERACTIVE = RetryPolicy(attempts=2, backoff=0.1, max_backoff=0.5, budget=3.0,
                          max_retry_after=1.0)  # fmt: skip
#: Seconds one call to EasyPost may take while a customer waits.
TIMEOUT = 5.0


async def carrier_ctx(app: web.Application) -> AsyncIterator[None]:
    app[CARRIER] = build_easypost_carrier(app[SETTINGS], timeout=TIMEOUT, policy=INTERACTIVE)
    yield


async def verify_address(request: web.Request) -> web.Response:
    authenticate(request)
    address = await _address_body(request)
    return respond(_verdict(await _verify(request, address)))


async def change_shipping_address(request: web.Request) -> web.Response:
    principal = authenticate(request)
    address = await _address_body(request)
    oid = order_id(request)
    async with request.app[SESSIONS]() as session:  # 404 before any carrier call
        await _owned(session, oid, principal.user_id, lock=False)
    verdict = await _verify(request, address)
    if not verdict.deliverable:
        raise ApiError(422, ErrorCode.ADDRESS_UNDELIVERABLE, "the carrier cannot deliver to this address",
                       {"problems": _verdict(verdict).model_dump()["problems"]})  # fmt: skip
    corrected = dict(verdict.address or address)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await _owned(session, oid, principal.user_id, lock=True)
        if S(order.status) not in CANCELLABLE:
            raise ApiError(409, ErrorCode.ORDER_NOT_CHANGEABLE,
                           f"an order that is {order.status} can no longer change its address",
                           {"status": order.status})  # fmt: skip
        await _no_label_in_flight(session, order)
        before = order.status
        order.shipping_address = corrected
        now = datetime.now(UTC)
        session.add(note(order, step="change_shipping_address", now=now, outcome="changed",
                         details={"address": corrected}))  # fmt: skip
        if order.status == S.ADDRESS_INVALID:
            await _ship_again(session, order, step="change_shipping_address", now=now)
        body = await _answer(session, order)
    _count_move(before, order.status)
    return respond(body)


async def _no_label_in_flight(session, order: Order) -> None:
    """A 409 at once while ``ship_order`` buys the label for the address as it stands
    (the purchase holds no row lock: ``pipelines.shipping.ship``); otherwise no purchase
    starts before this transaction ends, and the next one reads the new address."""
    await no_label_in_flight(session, order, message="the label is being bought for the "
                             "current address right now; the order can no longer change its "
                             "address")  # fmt: skip


async def override_address(request: web.Request) -> web.Response:
    principal = authenticate(request)
    oid = order_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(select(Order).where(Order.id == oid).with_for_update())
        if order is None:
            raise not_found("order")
        if order.status != S.ADDRESS_INVALID:
            raise ApiError(409, ErrorCode.ORDER_NOT_ADDRESS_INVALID,
                           f"only an address_invalid order can be overridden; this one is "
                           f"{order.status}", {"status": order.status})  # fmt: skip
        before = order.status
        order.shipping_address = {**order.shipping_address, AS_IS_KEY: AS_IS_VALUE}
        await _ship_again(session, order, step="address_override", now=datetime.now(UTC),
                          details={"admin": str(principal.user_id), "as_is": True})  # fmt: skip
        body = await _answer(session, order)
    _count_move(before, S.FULFILLING)
    return respond(body)


async def _address_body(request: web.Request) -> dict[str, Any]:
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "the body must be a JSON object")
    return parse(Address, raw).model_dump(exclude_none=True)


async def _verify(request: web.Request, address: dict[str, Any]) -> VerifiedAddress:
    """The carrier's verdict, asked off the event loop (the SDK is blocking)."""
    try:
        return await asyncio.to_thread(request.app[CARRIER].verify_address, address)
    except ProviderError as exc:
        raise ApiError(503, ErrorCode.CARRIER_UNAVAILABLE, "the carrier could not verify the address now",
                       {"reason": exc.code}, headers={"Retry-After": str(RETRY_AFTER)}) from None  # fmt: skip


def _verdict(verdict: VerifiedAddress) -> AddressVerdict:
    return AddressVerdict(
        deliverable=verdict.deliverable,
        address=dict(verdict.address) if verdict.address is not None else None,
        problems=[AddressProblemOut(code=p.code, field=p.field, message=p.message)
                  for p in verdict.problems],
    )  # fmt: skip


async def _owned(session: AsyncSession, oid, customer_id, *, lock: bool) -> Order:
    query = select(Order).where(Order.id == oid)
    order = await session.scalar(query.with_for_update() if lock else query)
    if order is None or order.customer_id != customer_id:
        raise not_found("order")
    return order


async def _ship_again(session: AsyncSession, order: Order, *, step: str, now: datetime,
                      details: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Back to ``fulfilling``, with the message that buys the label (it looks for a
    label an earlier try may have bought before buying one)."""
    session.add(transition(order, S.FULFILLING, step=step, now=now, details=details))
    await session.execute(outbox_insert(SHIP_ORDER, order_id=str(order.id),
                                        request_id=order.request_id))  # fmt: skip


async def _answer(session: AsyncSession, order: Order):
    await session.flush()
    await session.refresh(order, ["updated_at", "lines"])
    return order_out(order)


def _count_move(before: str, after: str) -> None:
    if before != after:
        metrics.order_transitions_total.labels(before, after).inc()
