"""The order aggregate: the order, its lines and timeline, plus the two tables written
in the same commit as an order change: the stored API replays and the outbox.

The database keeps an order's status one of the state machine's, and an
idempotency key unique per customer."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk
from fulfillment.states import OrderStatus


def _subtotal_is_total(context) -> int:
    """An order written without its parts (no quote): the lines are the whole total."""
    return context.get_current_parameters()["total_amount"]


ORDER_STATUSES = ", ".join(f"'{s.value}'" for s in OrderStatus)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({ORDER_STATUSES})", name="ck_orders_status"),
        CheckConstraint("total_amount >= 0", name="ck_orders_total"),
        CheckConstraint(
            "stock_state IN ('none', 'reserved', 'released', 'consumed')",  # stock.StockState
            name="ck_orders_stock_state",
        ),
        Index("ix_orders_refund_due", "id", postgresql_where=text("refund_due")),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_status_changed", "status", "status_changed_at"),
        # the operator desk's newest-first list and its date filters (migration 0009)
        Index("ix_orders_created", "created_at", "id"),
        Index("ix_orders_capture_due", "id", postgresql_where=text("capture_due")),
        Index(
            "ix_orders_uncaptured",
            "capture_before",
            postgresql_where=text(
                "capture_method = 'manual' AND amount_captured = 0 AND capture_before IS NOT NULL"
            ),
        ),
        CheckConstraint("amount_captured <= amount_authorized", name="ck_orders_captured"),
        CheckConstraint("amount_refunded <= amount_captured", name="ck_orders_refunded"),
        CheckConstraint(
            "amount_cancelled >= 0 AND amount_cancelled <= total_amount", name="ck_orders_cancelled"
        ),
        CheckConstraint(
            "subtotal_amount >= 0 AND shipping_amount >= 0 AND tax_amount >= 0 "
            "AND shipping_tax_amount BETWEEN 0 AND tax_amount "
            "AND total_amount = subtotal_amount + shipping_amount + tax_amount",
            name="ck_orders_total_parts",
        ),
        CheckConstraint(
            "tax_reversed_amount BETWEEN 0 AND tax_amount", name="ck_orders_tax_reversed"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(32), server_default=OrderStatus.PENDING.value)
    currency: Mapped[str] = mapped_column(String(3))
    #: What the customer pays (minor units): ``subtotal_amount`` (the lines) +
    #: ``shipping_amount`` + ``tax_amount`` (the lines' and the shipping's, the latter
    #: ``shipping_tax_amount``), from the quote the order took (none: subtotal only).
    total_amount: Mapped[int] = mapped_column(BigInteger)
    subtotal_amount: Mapped[int] = mapped_column(BigInteger, default=_subtotal_is_total)
    shipping_amount: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    tax_amount: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    shipping_tax_amount: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    #: The carrier and service the customer paid for; the label is bought for them.
    shipping_carrier: Mapped[str | None] = mapped_column(String(64))
    shipping_service: Mapped[str | None] = mapped_column(String(64))
    #: The checkout quote the order took, and the Stripe Tax calculation it priced by.
    quote_id: Mapped[uuid.UUID | None] = mapped_column()
    tax_calculation_id: Mapped[str | None] = mapped_column(String(255))
    #: The tax transaction recorded at capture (Stripe cannot find it by reference once
    #: its idempotency key has gone), and the tax reversed since with refunds.
    tax_transaction_id: Mapped[str | None] = mapped_column(String(255))
    tax_reversed_amount: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    shipping_address: Mapped[dict[str, Any]]
    payment_method: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    status_changed_at: Mapped[datetime] = created_column()

    #: Where the order's stock stands: none, reserved, released or consumed. Reserving,
    #: releasing and consuming each happen once, guarded by this column.
    stock_state: Mapped[str] = mapped_column(String(16), server_default="none")
    #: Where that stock is held (migration 0017): ``[{"product_id", "location_id",
    #: "quantity"}]``, one entry per (product, location), written with the reservation.
    allocation: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    #: The packages that have left (migration 0019), by location id: ``{"carrier",
    #: "tracking_code", "shipment_id", "status"}`` (``fulfillment.packages``).
    parcels: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    #: Set when money taken must be given back; cleared once Stripe confirms the refund.
    refund_due: Mapped[bool] = mapped_column(server_default=text("false"))
    refund_id: Mapped[str | None] = mapped_column(String(255))
    #: The status a dead-lettered order was in; a redrive resumes there.
    attention_from: Mapped[str | None] = mapped_column(String(32))
    #: The status an operator held the order in (``on_hold``); a release goes back there.
    held_from: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    #: When the stalled-order sweeper last re-drove this order.
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The request that placed the order: every message about the order carries it,
    #: whichever road it takes, so the order can be followed through the logs.
    request_id: Mapped[str | None] = mapped_column(String(128))

    # The payment (migration 0006). Amounts are in minor units, as Stripe keeps them.
    #: ``manual`` (authorized at order, captured when the goods ship) or ``automatic``
    #: (captured at order), as the charge asked Stripe; None before the charge.
    capture_method: Mapped[str | None] = mapped_column(String(16))
    #: What the customer sees of the payment (``payments.PaymentStatus``).
    payment_status: Mapped[str | None] = mapped_column(String(24))
    amount_authorized: Mapped[int] = mapped_column(BigInteger, server_default="0")
    amount_captured: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: Refunded, or being refunded: a refund's amount is counted when it is accepted,
    #: so concurrent refunds can never add up to more than was captured.
    amount_refunded: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: Units cancelled before they shipped (migration 0018): ``[{"product_id", "quantity",
    #: "amount", "refunded"}]``, one entry per cancel and product (``refunded``: the money
    #: had been taken and a refund by those lines gives it back).
    cancelled_lines: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    #: What will never be taken (units cancelled before the charge or the capture), in
    #: minor units: the charge asks, and the capture takes, ``total_amount`` less this.
    amount_cancelled: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: Stripe's deadline for capturing the authorization.
    capture_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Set in the commit that ships the first package; cleared once the capture is kept.
    capture_due: Mapped[bool] = mapped_column(server_default=text("false"))
    #: For the order's owner only, while the card needs authenticating (3-D Secure).
    payment_client_secret: Mapped[str | None] = mapped_column(Text)
    payment_next_action: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    lines: Mapped[list[OrderLine]] = relationship(
        order_by="OrderLine.position", lazy="selectin", back_populates="order"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="uq_order_lines_product"),
        CheckConstraint("quantity BETWEEN 1 AND 100", name="ck_order_lines_quantity"),
        # the operator desk's product filter: the orders holding a product (migration 0009)
        Index("ix_order_lines_product", "product_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    #: The tax on all of the line's units (minor units, from the quote; 0 without one).
    tax_amount: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)

    order: Mapped[Order] = relationship(back_populates="lines")


class OrderEvent(Base):
    """One entry of an order's timeline: a transition, or a step's attempt."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    outcome: Mapped[str] = mapped_column(String(32), server_default="success")
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = created_column()


#: How long a stored response is replayed under its ``Idempotency-Key`` (as Stripe).
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)


class IdempotencyKey(Base):
    """A stored response for a client's ``Idempotency-Key``, replayed for 24 hours."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
        Index("ix_idempotency_keys_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = created_column()


class OutboxMessage(Base):
    """A message to send after commit: written in the same transaction as the change
    it announces, delivered by the relay, swept again if the broker was down."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_undelivered", "id", postgresql_where=text("delivered_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue_name: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(128))
    kwargs: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = created_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The API request that wrote the row, if any: the message carries it on, so the
    #: worker's log lines of the step it starts can be found by the request's id.
    request_id: Mapped[str | None] = mapped_column(String(128))
