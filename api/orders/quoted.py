"""An order placed on a checkout quote (``quote_id`` and ``shipping_option_id``): the
quote must be the customer's, not expired (410 ``quote_expired``), for the same lines at
the same prices and the same address, and the option one of its own (422
``quote_mismatch``). The order then keeps the option's shipping and tax, each line its
tax, and the carrier and service it paid for. Without a quote an order is its lines
alone, unless ``CHECKOUT_QUOTE_REQUIRED`` (422 ``quote_required``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.orders.schemas import OrderCreate
from api.shared.errors import ApiError, ErrorCode
from fulfillment.ordering import PricedOrder

#: A quote as placement reads it, in its round trip.
QUOTES = (
    "SELECT id, customer_id, currency, items, shipping_address, options, expires_at "
    "FROM quotes WHERE id = ANY(%s)"
)


@dataclass(frozen=True, slots=True)
class Quoted:
    """What the order takes from its quote; ``Quoted()`` for an order without one."""

    shipping: int = 0
    tax: int = 0
    shipping_tax: int = 0
    line_taxes: dict[str, int] = field(default_factory=dict)
    carrier: str | None = None
    service: str | None = None
    quote_id: uuid.UUID | None = None
    calculation: str | None = None


def quoted(body: OrderCreate, customer_id: uuid.UUID, quote: Any, priced: PricedOrder,
           address: dict[str, Any], *, now: datetime, required: bool) -> Quoted:  # fmt: skip
    """The quote's terms for this order, or the ApiError that refuses it. ``quote`` is
    the stored row (``QUOTES``) or None."""
    if body.quote_id is None:
        if required:
            raise ApiError(422, ErrorCode.QUOTE_REQUIRED, "an order must name a checkout quote "
                           "and one of its shipping options (POST /v1/checkout/quotes)")  # fmt: skip
        return Quoted()
    if quote is None or quote[1] != customer_id:
        raise ApiError(404, ErrorCode.NOT_FOUND, "quote not found",
                       {"quote_id": str(body.quote_id)})  # fmt: skip
    _, _, currency, items, quoted_address, options, expires_at = quote
    if now >= expires_at:
        raise ApiError(410, ErrorCode.QUOTE_EXPIRED, "the quote has expired; ask for a new one",
                       {"quote_id": str(body.quote_id), "expired_at": expires_at.isoformat()})  # fmt: skip
    asked = sorted((str(line.product_id), line.quantity, line.unit_amount) for line in priced.lines)
    held = sorted((i["product_id"], i["quantity"], i["unit_amount"]) for i in items)
    if currency != priced.currency or asked != held:
        raise _mismatch("the quote was for other items, or their prices have changed since")
    if quoted_address != address:
        raise _mismatch("the quote was for another shipping address")
    option = next((o for o in options if o["id"] == body.shipping_option_id), None)
    if option is None:
        raise _mismatch("the quote has no such shipping option",
                        shipping_option_id=body.shipping_option_id)  # fmt: skip
    line_taxes = {product: int(tax) for product, tax in (option.get("line_taxes") or {}).items()}
    shipping_tax = int(option.get("shipping_tax") or 0)
    flat = bool(option.get("estimated"))  # priced without the carrier: its cheapest service
    return Quoted(
        shipping=int(option["shipping"]), tax=sum(line_taxes.values()) + shipping_tax,
        shipping_tax=shipping_tax, line_taxes=line_taxes,
        carrier=None if flat else option["carrier"], service=None if flat else option["service"],
        quote_id=body.quote_id, calculation=option.get("tax_calculation"),
    )  # fmt: skip


def _mismatch(message: str, **details: Any) -> ApiError:
    return ApiError(422, ErrorCode.QUOTE_MISMATCH, f"{message}; ask for a new quote", details)
