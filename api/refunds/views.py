"""``POST /v1/admin/orders/{id}/refunds``: an operator gives money back, by lines or by
amount, as often as needed and never more than was captured; ``"shipping": true`` adds
the shipping the customer paid and its tax, once per order (``409
shipping_already_refunded`` the second time, ``422 no_shipping_charged`` when it paid
none). The tax of what is refunded (the lines' shares, the shipping's) is reversed at
Stripe Tax once the refund succeeds (``pipelines.payments.tax``); a refund by amount
carries no tax.

The refund is accepted under the order's row lock with the rule the saga's own refunds
follow (``pipelines.payments.refunds``): its amount is counted on the order in the same commit,
so concurrent requests that together exceed the capture see each other and one is a
``409 refund_exceeds_captured``. The Stripe call, with the refund's own idempotency key,
and the customer's e-mail follow through the outbox. The ``Idempotency-Key`` header is
required: the same key and body answers the first refund again; the same key with
another body is ``422 idempotency_key_reused``. The key lives in the operator's own
space (``refunds.source``): whatever the client spells, it never meets the keys the saga
gives its own refunds (``compensation``, ``return_<id>``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from api.refunds.schemas import RefundCreate
from api.shared.context import SESSIONS
from api.shared.errors import ApiError, ErrorCode, not_found
from api.shared.idempotency import idempotency_key, request_fingerprint, same_request
from api.shared.jsonio import parse, read_json, respond
from api.shared.order_lookup import order_id
from api.shared.principal import authenticate
from fulfillment.models import Order, Refund
from fulfillment.money import to_minor
from fulfillment.order_view import refund_out
from fulfillment.refunds import (
    LineNotInOrder,
    NoShippingCharged,
    RefundExceedsQuantity,
    ShippingAlreadyRefunded,
    price_refund_lines,
    price_shipping,
)
from fulfillment.transitions import note
from pipelines.payments.refunds import OPERATOR, RefundRefused, accept_refund


async def create_refund(request: web.Request) -> web.Response:
    principal = authenticate(request)
    key = idempotency_key(request)
    if key is None:
        raise ApiError(400, ErrorCode.IDEMPOTENCY_KEY_REQUIRED,
                       "a refund needs an Idempotency-Key header, so a retry never refunds twice")  # fmt: skip
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "the body must be a JSON object")
    body = parse(RefundCreate, raw)
    fingerprint = request_fingerprint(raw)
    async with request.app[SESSIONS]() as session, session.begin():
        order = await session.scalar(
            select(Order).where(Order.id == order_id(request)).with_for_update()
        )
        if order is None:
            raise not_found("order")
        refunds = (await session.scalars(select(Refund).where(Refund.order_id == order.id))).all()
        earlier = next((refund for refund in refunds
                        if refund.source == OPERATOR and refund.request_key == key), None)  # fmt: skip
        if earlier is not None:
            same_request(earlier.request_hash, fingerprint)
            return respond(refund_out(earlier), status=201)
        amount, parts = _priced(body, order, refunds)
        try:
            row, statements = accept_refund(order, amount=amount, source=OPERATOR, request_key=key,
                                            reason=body.reason, request_hash=fingerprint,
                                            requested_by=principal.user_id, **parts)  # fmt: skip
        except RefundRefused as exc:
            raise ApiError(409, ErrorCode(exc.code), str(exc), exc.details) from None
        for statement in statements:
            await session.execute(statement)
        session.add(note(order, step="refund_requested", now=datetime.now(UTC), outcome="accepted",
                         details={"refund": str(row["id"]), "amount": amount,
                                  "admin": str(principal.user_id)}))  # fmt: skip
        await session.flush()
        created = await session.get(Refund, row["id"])
        body_out = refund_out(created)
    return respond(body_out, status=201)


def _priced(body: RefundCreate, order: Order, refunds) -> tuple[int, dict[str, Any]]:
    """(amount in minor units, the refund row's lines, shipping and tax) of the request:
    by amount (no tax), or by lines at the refund-by-lines rule (``fulfillment.refunds``),
    and the shipping with its tax when asked."""
    try:
        if body.amount is not None:
            amount, lines = to_minor(body.amount, order.currency), []
        elif body.lines is not None:
            wanted = [(str(line.product_id), line.quantity) for line in body.lines]
            amount, lines = price_refund_lines(order, refunds, wanted)
        else:
            amount, lines = 0, []
        if not body.shipping:
            return amount, {"lines": lines}
        shipping, shipping_tax = price_shipping(order, refunds)
    except (LineNotInOrder, NoShippingCharged) as exc:
        raise ApiError(422, ErrorCode(exc.code), str(exc), exc.details) from None
    except (RefundExceedsQuantity, ShippingAlreadyRefunded) as exc:
        raise ApiError(409, ErrorCode(exc.code), str(exc), exc.details) from None
    tax = sum(line.get("tax", 0) for line in lines) + shipping_tax
    return amount + shipping + shipping_tax, {"lines": lines, "shipping": shipping, "tax": tax}
