"""The order as the API shows it, in one place: ``GET /v1/orders/{id}`` answers it and
the merchant's webhooks carry it (``pipelines.merchant_webhooks.deliver``), so the two can never
disagree. It lives in the shared core because both the API and the workers render it.

A webhook renders the order as it stood at its event: the row the database trigger
copied into the event (``to_jsonb`` of the order) and the order's lines, which never
change once it is placed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import DateTime
from sqlalchemy.dialects.postgresql import UUID

from fulfillment.line_cancellation import cancelled_units
from fulfillment.models import Order
from fulfillment.money import format_decimal, format_minor
from fulfillment.packages import Package, packages_of


class OrderItemOut(BaseModel):
    product_id: uuid.UUID
    sku: str
    name: str
    quantity: int
    unit_price: str


class RefundOut(BaseModel):
    id: uuid.UUID
    status: str = Field(description="pending, succeeded or failed")
    amount: str = Field(description="a decimal string, as prices are")
    amount_minor: int = Field(description="the amount in the currency's minor unit")
    currency: str
    lines: list[dict[str, Any]] = Field(
        description="product_id, quantity, amount (minor, its tax share included), tax (minor)"
    )
    tax_amount: int = Field(default=0, description="of the amount, the tax given back (minor)")
    shipping_amount: int = Field(
        default=0, description="of the amount, the shipping given back, its tax aside (minor)"
    )
    reason: str | None
    source: str = Field(description="operator (the admin route) or compensation (the saga)")
    created_at: datetime
    settled_at: datetime | None


class PaymentOut(BaseModel):
    status: str | None = Field(
        description="processing, requires_action, authorized, captured, partially_refunded, "
        "refunded, voided or failed; null before the charge"
    )
    capture_method: str | None = Field(description="manual (captured at shipment) or automatic")
    authorized_amount: int = Field(description="minor units")
    captured_amount: int = Field(description="minor units")
    refunded_amount: int = Field(description="minor units, refunds accepted included")
    capture_before: datetime | None = Field(description="Stripe's deadline for the capture")
    client_secret: str | None = Field(
        default=None, description="only for the order's owner, while status is requires_action"
    )
    next_action: dict[str, Any] | None = Field(
        default=None, description="only for the order's owner, while status is requires_action"
    )
    refunds: list[RefundOut] | None = Field(
        default=None, description="the order's refunds, oldest first (on GET of one order)"
    )


class PackageLineOut(BaseModel):
    product_id: uuid.UUID
    quantity: int


class PackageOut(BaseModel):
    id: uuid.UUID = Field(description="the same for the order and location on every read")
    location_id: uuid.UUID
    status: str = Field(
        description="pending, shipped, in_transit, delivered, failed (the carrier said it will "
        "not arrive: its lines are refunded) or cancelled"
    )
    lines: list[PackageLineOut]
    carrier: str | None = Field(default=None, description="once its label is bought")
    tracking_code: str | None = Field(default=None, description="once its label is bought")


class OrderOut(BaseModel):
    id: uuid.UUID
    status: str
    items: list[OrderItemOut]
    total: str
    total_amount: int = Field(description="total in the currency's minor unit")
    currency: str
    subtotal: str = Field(description="the lines, a decimal string")
    subtotal_amount: int = Field(description="minor units")
    shipping: str = Field(description="what the customer paid for shipping (0 without a quote)")
    shipping_amount: int = Field(description="minor units")
    tax: str = Field(description="the lines' tax and the shipping's (0 without a quote)")
    tax_amount: int = Field(description="minor units; total = subtotal + shipping + tax")
    shipping_carrier: str | None = Field(default=None, description="the carrier paid for")
    shipping_service: str | None = Field(default=None, description="the service paid for")
    shipping_address: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    payment: PaymentOut | None = None
    cancelled_items: list[PackageLineOut] = Field(
        default_factory=list, description="units cancelled before they shipped, per product"
    )
    amount_cancelled: int = Field(
        default=0, description="minor units never taken: units cancelled before the payment"
    )
    packages: list[PackageOut] = Field(
        default_factory=list,
        description="the order's stock at each location it is taken from, once reserved",
    )

    @classmethod
    def of(cls, *, id: uuid.UUID, status: str, lines: Any, currency: str, total_amount: int,
           shipping_address: dict[str, Any], created_at: datetime, updated_at: datetime,
           shipping_amount: int = 0, tax_amount: int = 0, shipping_carrier: str | None = None,
           shipping_service: str | None = None) -> OrderOut:  # fmt: skip
        """The order as the API shows it, from stored lines or freshly priced ones
        (anything with product_id, sku, name, quantity and a decimal unit_price)."""

        def money(amount: int) -> str:
            return format_minor(amount, currency)

        subtotal = total_amount - shipping_amount - tax_amount
        return cls(
            id=id, status=status, currency=currency, total_amount=total_amount,
            subtotal=money(subtotal), subtotal_amount=subtotal, shipping=money(shipping_amount),
            shipping_amount=shipping_amount, tax=money(tax_amount), tax_amount=tax_amount,
            shipping_carrier=shipping_carrier, shipping_service=shipping_service,
            items=[OrderItemOut(product_id=line.product_id, sku=line.sku, name=line.name,
                                quantity=line.quantity,
                                unit_price=format_decimal(line.unit_price, currency))
                   for line in lines],
            total=money(total_amount),
            shipping_address=shipping_address, created_at=created_at, updated_at=updated_at,
        )  # fmt: skip


def placed_order_json(*, id: uuid.UUID, lines: Any, currency: str, total_amount: int,
                      shipping_address: dict[str, Any], at: datetime, shipping_amount: int = 0,
                      tax_amount: int = 0, shipping_carrier: str | None = None,
                      shipping_service: str | None = None) -> dict[str, Any]:  # fmt: skip
    """``OrderOut.of(..., status="pending").model_dump(mode="json")`` for an order just
    placed at ``at`` (UTC), built as plain JSON: the API answers every new order with it,
    and building and dumping the model cost more than the rest of the answer. A unit test
    holds the two to the same JSON, so a field added to ``OrderOut`` fails it until it is
    added here."""
    subtotal = total_amount - shipping_amount - tax_amount
    stamp = _utc_json(at)
    return {
        "id": str(id), "status": "pending",
        "items": [{"product_id": str(line.product_id), "sku": line.sku, "name": line.name,
                   "quantity": line.quantity,
                   "unit_price": format_decimal(line.unit_price, currency)} for line in lines],
        "total": format_minor(total_amount, currency), "total_amount": total_amount,
        "currency": currency,
        "subtotal": format_minor(subtotal, currency), "subtotal_amount": subtotal,
        "shipping": format_minor(shipping_amount, currency), "shipping_amount": shipping_amount,
        "tax": format_minor(tax_amount, currency), "tax_amount": tax_amount,
        "shipping_carrier": shipping_carrier, "shipping_service": shipping_service,
        "shipping_address": shipping_address, "created_at": stamp, "updated_at": stamp,
        "payment": None, "cancelled_items": [], "amount_cancelled": 0, "packages": [],
    }  # fmt: skip


def _utc_json(at: datetime) -> str:
    """A UTC time as pydantic writes it in JSON ("...T00:22:54.910582Z")."""
    if at.utcoffset() != timedelta(0):
        raise ValueError(f"not a UTC time: {at!r}")
    return at.replace(tzinfo=None).isoformat() + "Z"


def order_out(order: Order | OrderSnapshot, *, owner: bool = False,
              refunds: Iterable[Any] | None = None) -> OrderOut:  # fmt: skip
    """A stored order (with its lines) as the API shows it. What the customer needs to
    authenticate a card (``client_secret``, ``next_action``) is shown to ``owner`` only."""
    out = OrderOut.of(
        id=order.id, status=order.status, lines=order.lines, currency=order.currency,
        total_amount=order.total_amount, shipping_address=order.shipping_address,
        created_at=order.created_at, updated_at=order.updated_at,
        shipping_amount=order.shipping_amount or 0, tax_amount=order.tax_amount or 0,
        shipping_carrier=order.shipping_carrier, shipping_service=order.shipping_service,
    )  # fmt: skip
    out.payment = payment_out(order, owner=owner, refunds=refunds)
    out.cancelled_items = [PackageLineOut(product_id=uuid.UUID(product), quantity=quantity)
                           for product, quantity in sorted(cancelled_units(order.cancelled_lines or []).items())]  # fmt: skip
    out.amount_cancelled = order.amount_cancelled or 0
    out.packages = [package_out(p) for p in packages_of(
        order.id, order.status, order.stock_state or "none", order.allocation or [],
        order.parcels or {})]  # fmt: skip
    return out


def package_out(package: Package) -> PackageOut:
    parcel = package.parcel or {}
    return PackageOut(id=package.id, location_id=package.location_id, status=package.status,
                      lines=[PackageLineOut(**line) for line in package.lines],
                      carrier=parcel.get("carrier"), tracking_code=parcel.get("tracking_code"))  # fmt: skip


def payment_out(
    order: Order | OrderSnapshot, *, owner: bool, refunds: Iterable[Any] | None
) -> PaymentOut:
    waiting = owner and order.payment_status == "requires_action"
    return PaymentOut(
        status=order.payment_status, capture_method=order.capture_method,
        authorized_amount=order.amount_authorized or 0, captured_amount=order.amount_captured or 0,
        refunded_amount=order.amount_refunded or 0, capture_before=order.capture_before,
        client_secret=order.payment_client_secret if waiting else None,
        next_action=order.payment_next_action if waiting else None,
        refunds=None if refunds is None else [refund_out(refund) for refund in refunds],
    )  # fmt: skip


def refund_out(refund: Any) -> RefundOut:
    return RefundOut(
        id=refund.id, status=refund.status, currency=refund.currency, amount_minor=refund.amount,
        amount=format_minor(refund.amount, refund.currency),
        lines=refund.lines, reason=refund.reason, source=refund.source,
        tax_amount=refund.tax_amount or 0, shipping_amount=refund.shipping_amount or 0,
        created_at=refund.created_at, settled_at=refund.settled_at,
    )  # fmt: skip


class OrderSnapshot(SimpleNamespace):
    """An order as a merchant event's copy of its row holds it: every column of
    ``orders`` an attribute (None where the copy lacks it), and its lines. Plain
    attributes, not a detached ``Order``: the ORM's instrumented construction cost five
    times what rendering the event does with it."""


#: ``orders``' columns and how their JSON copy reads back: a time, a UUID, or as is.
_SNAPSHOT_COLUMNS: tuple[tuple[str, Any], ...] = tuple(
    (column.key, datetime.fromisoformat if isinstance(column.type, DateTime)
     else uuid.UUID if isinstance(column.type, UUID) else None)
    for column in Order.__table__.columns
)  # fmt: skip


def order_from_snapshot(snapshot: Mapping[str, Any], lines: Iterable[Any]) -> OrderSnapshot:
    """The order from the JSON copy of its row (``to_jsonb(orders)``) and its lines
    (anything with product_id, sku, name, quantity and unit_price): whatever
    ``order_out`` reads of a stored order, it reads of this one too. Columns the copy
    lacks (removed secrets, a column newer than the copy) are None."""
    values: dict[str, Any] = {}
    for key, read in _SNAPSHOT_COLUMNS:
        raw = snapshot.get(key)
        values[key] = read(raw) if raw is not None and read is not None else raw
    return OrderSnapshot(**values, lines=list(lines))
