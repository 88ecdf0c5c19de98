"""What a customer e-mail's template is given (SendGrid's ``dynamic_template_data``),
built by the worker when the mail is sent, never in the step's commit.

Every kind gets ``first_name``; an order's mails also get ``order_id``,
``order_number`` (``fulfillment.order_number``), ``placed_on``, ``currency`` (upper
case), ``lines`` (``name``, ``sku``, ``quantity``, ``unit_price``, ``line_total``),
``item_count``, ``subtotal`` (the lines), ``shipping``, ``tax``, ``total`` (their sum),
``shipping_method`` (the carrier and service paid for, as "USPS Priority"; absent for an
order placed without a checkout quote, whose shipping and tax are 0) and
``shipping_address``. Amounts are decimal strings in the order's currency ("12.50").
On top of that, by kind:

- shipped, delivered: ``carrier``, ``tracking_code``, ``tracking_url`` (the carrier's
  own tracking page; absent for a carrier without a known one);
- refunded: ``refund_amount`` (the notification's ``amount`` in minor units when it
  has one, a partial refund; else the order's total), ``refund_partial``, and of the
  amount, where nonzero, ``refund_tax`` and ``refund_shipping`` (its tax aside): the
  notification's ``tax_amount`` and ``shipping_amount`` (minor units, as the refund row
  keeps them) when it carries them, else for a refund of the whole total the order's
  own (a partial refund that carries neither shows neither);
- cancelled, payment_failed: ``reason`` (a code) and ``reason_text`` (a sentence).

What the notification row carries (a tracking code, a reason, a reset link) is kept.

Cost: one statement per order e-mail at most, and no round trip of its own for a mail
a step claims. The order and its lines never change once placed, so a process keeps
them (``_ORDERS_SEEN``) and reads them once per order; the shipment is read for the
shipped and delivered mails, unless the notification carries its carrier and tracking
code. A step claims its mail with the order's facts joined to the claim's own statement
when it must read them (``CLAIMED_WITH_FACTS``), and the data is composed from that row;
a mail claimed by ``send_notification`` reads in the transaction that claims it; a
mail whose data could not be composed at its claim reads in a read-only transaction of
its own after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from sqlalchemy import bindparam, func, select, text, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from fulfillment.models import Order, OrderLine, Shipment
from fulfillment.money import format_minor, to_minor
from fulfillment.notifications import CLAIMED_INTENT
from fulfillment.order_number import order_number
from integrations.ports import NotificationKind as K
from pipelines import sql
from pipelines.common import reading
from pipelines.deps import Deps
from pipelines.locked_order import LinesCache

#: Mails that show where the parcel is.
TRACKED = frozenset({K.SHIPPED, K.DELIVERED})
#: Mails about no order.
ACCOUNT_MAIL = frozenset({K.WELCOME, "password_reset"})
#: Each carrier's public tracking page (EasyPost's carrier names).
TRACKING_PAGES: Mapping[str, str] = {
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={code}",
    "UPS": "https://www.ups.com/track?tracknum={code}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={code}",
    "DHLExpress": "https://www.dhl.com/en/express/tracking.html?AWB={code}",
    "CanadaPost": "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={code}",
    "RoyalMail": "https://www.royalmail.com/track-your-item#/tracking-results/{code}",
}
#: What a cancellation or a failed payment's reason code says to the customer.
REASONS: Mapping[str, str] = {
    "customer_request": "you asked us to cancel it",
    "merchant_request": "we had to cancel it",  # an operator's cancel (api.desk.actions)
    "out_of_stock": "an item in it is out of stock",
    "reservation_expired": "the payment did not arrive in time",
    "not_shippable": "we could not ship it",
    "card_declined": "your card was declined",
    "declined": "your card was declined",
    "generic_decline": "your card was declined",
    "insufficient_funds": "your card has insufficient funds",
    "expired_card": "your card has expired",
    "incorrect_cvc": "the card's security code was wrong",
    "authentication_required": "your bank asked for an authentication that did not happen",
}

#: The order, its lines (as [name, sku, quantity, unit amount], in order) and its
#: shipment, if any.
_LINES = (
    select(func.coalesce(func.jsonb_agg(aggregate_order_by(
        func.jsonb_build_array(OrderLine.name, OrderLine.sku, OrderLine.quantity,
                               OrderLine.unit_amount), OrderLine.position)), text("'[]'::jsonb")))
    .where(OrderLine.order_id == Order.id).scalar_subquery()
)  # fmt: skip
_ORDER = (
    select(Order.currency, Order.total_amount, Order.subtotal_amount, Order.shipping_amount,
           Order.tax_amount, Order.shipping_carrier, Order.shipping_service,
           Order.shipping_address, Order.created_at, _LINES.label("lines"), Shipment.carrier,
           Shipment.tracking_code)
    .outerjoin(Shipment, Shipment.order_id == Order.id).where(Order.id == bindparam("b_order"))
    .order_by(Shipment.created_at.desc()).limit(1)
)  # fmt: skip
#: A claim (``fulfillment.notifications.CLAIMED_INTENT``) with its order's facts and
#: latest shipment (``_ORDER``'s columns) joined: the mail's data in the claim's own
#: statement. No order (deleted, or none) leaves them null.
_FACTS = _ORDER.lateral("facts")
CLAIMED_WITH_FACTS = CLAIMED_INTENT.add_columns(*_FACTS.c).outerjoin(_FACTS, true())


#: The order's latest parcel (an order in several packages: the one its mail names
#: carries its own carrier and tracking code).
_SHIPMENT = (
    select(Shipment.carrier, Shipment.tracking_code)
    .where(Shipment.order_id == bindparam("b_order"))
    .order_by(Shipment.created_at.desc()).limit(1)
)  # fmt: skip
#: Orders this process has read for mail: what they show never changes.
_ORDERS_SEEN = LinesCache(4096)
#: What the order facts keep for ``compose`` and the template is not given (minor units).
_KEPT_BACK = frozenset({"total_amount", "tax_amount", "shipping_amount"})


def template_data(deps: Deps, claimed: Any, *, session: Session | None = None) -> dict[str, Any]:
    """The template data of a claimed e-mail; reads in ``session`` when given, else in
    a read-only transaction of its own (only when it must read at all)."""
    if claimed.order_id is None or claimed.kind in ACCOUNT_MAIL:
        return compose(claimed, order=None, shipment=None)
    order, carried = _ORDERS_SEEN.get(claimed.order_id), _carried(claimed)
    if order is not None and (carried is not None or claimed.kind not in TRACKED):
        return compose(claimed, order=order, shipment=carried)
    if session is not None:
        return _read_and_compose(session, claimed, order)
    with reading(deps) as own:
        return _read_and_compose(own, claimed, order)


def reads_at_send(claimed_kind: str, order_id: Any, carried: Mapping[str, Any]) -> bool:
    """Whether a mail of ``claimed_kind`` about ``order_id`` carrying ``carried`` would
    read the database to be composed (``template_data``): then its claim brings the
    facts along (``CLAIMED_WITH_FACTS``)."""
    if order_id is None or claimed_kind in ACCOUNT_MAIL:
        return False
    shown = carried.get("carrier") and carried.get("tracking_code")
    return _ORDERS_SEEN.get(order_id) is None or (claimed_kind in TRACKED and not shown)


def composed_at_claim(claimed: Any) -> dict[str, Any] | None:
    """The template data from a claim row of ``CLAIMED_WITH_FACTS``; None when its order
    was not found (``template_data`` then reads after the commit, as for any mail)."""
    if claimed.currency is None:
        return None
    order = _ORDERS_SEEN.get(claimed.order_id)
    if order is None:
        order = _order_facts(claimed.order_id, claimed)
        _ORDERS_SEEN.put(claimed.order_id, order)
    shipment = (claimed.carrier, claimed.tracking_code) if claimed.tracking_code else None
    return compose(claimed, order=order, shipment=_carried(claimed) or shipment)


def _carried(claimed: Any) -> tuple[str, str] | None:
    """The shipment as the notification carries it (carrier and tracking code), if so."""
    data = claimed.data or {}
    carrier, code = data.get("carrier"), data.get("tracking_code")
    return (carrier, code) if carrier and code else None


def _read_and_compose(session: Session, claimed: Any, order: dict | None) -> dict[str, Any]:
    params = {"b_order": claimed.order_id}
    if order is None:
        row = sql.one(session, _ORDER, params)
        if row is None:  # deleted since: the customer's name is all there is
            return compose(claimed, order=None, shipment=None)
        order = _order_facts(claimed.order_id, row)
        _ORDERS_SEEN.put(claimed.order_id, order)
        shipment = (row.carrier, row.tracking_code) if row.tracking_code else None
    else:
        found = sql.one(session, _SHIPMENT, params)
        shipment = (found.carrier, found.tracking_code) if found else None
    return compose(claimed, order=order, shipment=shipment)


def _order_facts(order_id: uuid.UUID, row: Any) -> dict[str, Any]:
    currency = row.currency
    method = " ".join(part for part in (row.shipping_carrier, row.shipping_service) if part)
    lines = [
        {"name": name, "sku": sku, "quantity": quantity,
         "unit_price": _money(unit, currency), "line_total": _money(unit * quantity, currency)}
        for name, sku, quantity, unit in row.lines
    ]  # fmt: skip
    return {
        "order_id": str(order_id),
        "order_number": order_number(order_id),
        "placed_on": row.created_at.strftime("%d %B %Y"),
        "currency": currency.upper(),
        "lines": lines,
        "item_count": sum(line["quantity"] for line in lines),
        "subtotal": _money(row.subtotal_amount, currency),
        "shipping": _money(row.shipping_amount, currency),
        "tax": _money(row.tax_amount, currency),
        "total": _money(row.total_amount, currency),
        **({"shipping_method": method} if method else {}),
        "total_amount": row.total_amount,
        "tax_amount": row.tax_amount,
        "shipping_amount": row.shipping_amount,
        "shipping_address": dict(row.shipping_address),
    }


def compose(
    claimed: Any, *, order: Mapping[str, Any] | None, shipment: tuple[str, str] | None
) -> dict[str, Any]:
    """The template data from what was read (pure: no I/O)."""
    data: dict[str, Any] = {**dict(claimed.data), "first_name": claimed.first_name}
    if order is not None:  # what the notification carries wins over the cached order
        data.update({k: v for k, v in order.items()
                     if k not in _KEPT_BACK and k not in claimed.data})  # fmt: skip
    if claimed.kind in TRACKED and shipment is not None:
        carrier, code = shipment
        data.update(carrier=carrier, tracking_code=data.get("tracking_code") or code)
        url = tracking_url(carrier, data["tracking_code"])
        if url:
            data["tracking_url"] = url
    if claimed.kind == K.REFUNDED and order is not None:
        data.update(_refund(claimed.data, order))
    if claimed.kind in (K.CANCELLED, K.PAYMENT_FAILED):
        reason = str(data.get("reason") or "unknown")
        data["reason"] = reason
        data["reason_text"] = REASONS.get(reason, reason.replace("_", " "))
    return data


def _refund(carried: Mapping[str, Any], order: Mapping[str, Any]) -> dict[str, Any]:
    """What a refund mail says of the refund: its amount, whether it is part of the
    total, and of it the tax and the shipping where nonzero."""
    currency = order["currency"].lower()
    refunded = _minor(carried.get("amount"), currency)
    partial = refunded is not None and refunded < order["total_amount"]
    out: dict[str, Any] = {
        "refund_amount": _money(refunded or order["total_amount"], currency),
        "refund_partial": partial,
    }
    parts = ("tax_amount", "shipping_amount")
    if any(part in carried for part in parts):  # the refund row's own split
        tax, shipping = (_minor(carried.get(part), currency) or 0 for part in parts)
    elif not partial:  # the whole total: the order's tax and shipping
        tax, shipping = order.get("tax_amount", 0), order.get("shipping_amount", 0)
    else:  # a part of it, split unknown: none shown rather than a guess
        tax = shipping = 0
    if tax:
        out["refund_tax"] = _money(tax, currency)
    if shipping:
        out["refund_shipping"] = _money(shipping, currency)
    return out


def tracking_url(carrier: str | None, code: str | None) -> str | None:
    page = TRACKING_PAGES.get(carrier or "")
    return page.format(code=quote(code, safe="")) if page and code else None


def _money(amount: int, currency: str) -> str:
    return format_minor(int(amount), currency)


def _minor(amount: Any, currency: str) -> int | None:
    """A refund's ``amount``: minor units (an int), or a decimal string ("12.50")."""
    if isinstance(amount, bool) or amount is None:
        return None
    if isinstance(amount, int):
        return amount
    try:
        value = Decimal(str(amount))
    except ArithmeticError:
        return None
    return (
        int(value)
        if value == value.to_integral() and "." not in str(amount)
        else to_minor(value, currency)
    )
