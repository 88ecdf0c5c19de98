"""The database tables as SQLAlchemy 2 models. The schema itself is built by Alembic.

Invariants the database enforces on its own, whatever the code does:
- one account per e-mail, compared case-insensitively;
- stock can never be oversold: ``0 <= reserved <= on_hand``;
- an order's status is one of the state machine's;
- an idempotency key is unique per customer; a webhook event per provider.
"""

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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from fulfillment.states import OrderStatus

ORDER_STATUSES = ", ".join(f"'{s.value}'" for s in OrderStatus)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, uuid.UUID: UUID(as_uuid=True)}


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _updated() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('customer', 'admin')", name="ck_users_role"),
        CheckConstraint(
            "email_status IN ('ok', 'bounced', 'complained')", name="ck_users_email_status"
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(Text)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), server_default="customer")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    #: ``ok``, or ``bounced`` / ``complained`` once SendGrid reported the address
    #: (migration 0008): such an address gets only essential e-mail.
    email_status: Mapped[str] = mapped_column(String(16), server_default="ok")
    email_status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Access tokens and refresh sessions carry it; a password reset or change raises
    #: it, and whatever carries an older one stops working (``api.users.sessions``).
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")


class RefreshSession(Base):
    """One refresh token. Tokens of one login form a family; rotating marks the old one
    used, and presenting a used one again revokes the whole family. Every writer of an
    account's sessions holds the account's row first (``api.users.sessions``)."""

    __tablename__ = "refresh_sessions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The account's token version when the session was issued: one older than the
    #: account's (a reset or a password change since) refreshes nothing (migration 0014).
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="ck_products_price"),
        CheckConstraint("currency ~ '^[a-z]{3}$'", name="ck_products_currency"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str] = mapped_column(String(64), index=True)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    inventory: Mapped[Inventory] = relationship(lazy="joined", innerjoin=True)


class Inventory(Base):
    __tablename__ = "inventory"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="ck_inventory_on_hand"),
        CheckConstraint("reserved >= 0", name="ck_inventory_reserved"),
        CheckConstraint("reserved <= on_hand", name="ck_inventory_not_oversold"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    on_hand: Mapped[int] = mapped_column(Integer, server_default="0")
    reserved: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = _updated()


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
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(32), server_default=OrderStatus.PENDING.value)
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(BigInteger)
    shipping_address: Mapped[dict[str, Any]]
    payment_method: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    status_changed_at: Mapped[datetime] = _created()

    #: Where the order's stock stands: none, reserved, released or consumed. Reserving,
    #: releasing and consuming each happen once, guarded by this column.
    stock_state: Mapped[str] = mapped_column(String(16), server_default="none")
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
    created_at: Mapped[datetime] = _created()


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
    created_at: Mapped[datetime] = _created()


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
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The API request that wrote the row, if any: the message carries it on, so the
    #: worker's log lines of the step it starts can be found by the request's id.
    request_id: Mapped[str | None] = mapped_column(String(128))


class StockMovement(Base):
    """The stock ledger: every change of on-hand stock, so on hand can be audited.
    One movement per (order, product, reason), which makes consuming stock idempotent."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        Index(
            "uq_stock_movements_order",
            "order_id",
            "product_id",
            "reason",
            unique=True,
            postgresql_where=text("order_id IS NOT NULL"),
        ),
        Index("ix_stock_movements_product", "product_id"),
        #: A return's movements (migration 0011): one per (return, product, reason).
        Index(
            "uq_stock_movements_return",
            "return_id",
            "product_id",
            "reason",
            unique=True,
            postgresql_where=text("return_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"))
    #: The return that brought the units back (reasons ``returned`` and ``damaged``).
    return_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("returns.id", name="fk_stock_movements_return_id")
    )
    created_at: Mapped[datetime] = _created()


class Fulfillment(Base):
    """Pick and pack, recorded on its own: one per order."""

    __tablename__ = "fulfillments"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    parcel_weight_oz: Mapped[int] = mapped_column(Integer)
    picked_at: Mapped[datetime] = _created()
    packed_at: Mapped[datetime] = _created()


class Shipment(Base):
    """The carrier's label for an order and the last tracker status seen."""

    __tablename__ = "shipments"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    shipment_id: Mapped[str] = mapped_column(String(255), unique=True)
    tracking_code: Mapped[str] = mapped_column(String(255), index=True)
    tracker_id: Mapped[str | None] = mapped_column(String(255))
    label_url: Mapped[str] = mapped_column(Text)
    carrier: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    tracker_status: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Notification(Base):
    """One e-mail we mean to send, at most once: the row is written with the change
    that calls for it, claimed before sending and marked sent after."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'suppressed')",
            name="ck_notifications_status",
        ),
        Index(
            "ix_notifications_pending", "created_at", postgresql_where=text("status = 'pending'")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


#: How long a stored provider event may wait for its application (in the statement that
#: stores it, the charge's or the label's commit, or ``process_webhook``) before it
#: counts as unapplied: the on-call gauge (``workers.gauges``) and ``fulfillment verify``.
WEBHOOK_UNAPPLIED_AFTER = timedelta(seconds=60)


class WebhookEvent(Base):
    """A provider webhook, stored once per (provider, event id) and handed on."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event"),
        Index(
            "ix_webhook_events_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
        ),
        Index(
            "ix_webhook_events_waiting_tracker",
            "tracking_code",
            postgresql_where=text("processed_at IS NULL AND tracking_code IS NOT NULL"),
        ),
        Index(
            "ix_webhook_events_waiting_order",
            "order_id",
            postgresql_where=text("processed_at IS NULL AND order_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[uuid.UUID | None] = mapped_column()
    #: A tracker event's tracking code: one that arrives before its shipment is stored
    #: waits under it, unprocessed, until the shipment's commit applies it.
    tracking_code: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = _created()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Refund(Base):
    """Money given back for an order, once: an operator's partial refund (by lines or
    by amount) or the saga's compensation. Each has its own Stripe idempotency key
    (``refund_<id>``), so a retry never refunds twice."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint(
            "order_id", "source", "request_key", name="uq_refunds_order_source_request_key"
        ),
        CheckConstraint("amount > 0", name="ck_refunds_amount"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_refunds_status"),
        Index("ix_refunds_pending", "id", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: ``[{"product_id", "quantity", "amount"}]`` for a refund by lines, else empty.
    lines: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    reason: Mapped[str | None] = mapped_column(String(255))
    #: ``operator`` (the admin route), ``compensation`` (the saga) or ``return``.
    source: Mapped[str] = mapped_column(String(16))
    #: What makes the request unique for its order and source: the operator's
    #: Idempotency-Key, ``compensation`` (``compensation_<n>`` for the n-th attempt after
    #: a refusal) or ``return_<id>``; a second request with it finds the first refund.
    #: Keys of different sources never meet (an operator's key spelled ``compensation``
    #: is the operator's own).
    request_key: Mapped[str] = mapped_column(String(255))
    #: The request's body, hashed: the same key with another body is refused.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CarrierShipment(Base):
    """The one carrier shipment made for a reference (an order id, ``return_<id>``),
    kept - committed - before it is bought (migration 0013): a later try buys or finds
    that shipment by id (``integrations.easypost_gateway``). No foreign key: it is
    written while the order's row is locked by the step that buys."""

    __tablename__ = "carrier_shipments"

    reference: Mapped[str] = mapped_column(String(255), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(String(255))
    request_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class LabelVoid(Base):
    """A label bought for goods that will not ship, voided through the carrier's refund
    (migration 0010): ``submitted`` until the carrier settles it ``refunded``,
    ``rejected`` (the label was scanned) or ``not_applicable`` (billed on scan)."""

    __tablename__ = "label_voids"
    __table_args__ = (
        CheckConstraint("status IN ('submitted', 'refunded', 'rejected', 'not_applicable')",
                        name="ck_label_voids_status"),
        Index("ix_label_voids_submitted", "requested_at",
              postgresql_where=text("status = 'submitted'")),
    )  # fmt: skip

    shipment_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(24))
    requested_at: Mapped[datetime] = _created()
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the sweeper last asked for the void to be checked again.
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailEvent(Base):
    """One SendGrid event (delivered, bounce, ...) of a notification, stored once per
    ``sg_event_id``; ``notification_id`` is None for mail this system did not send."""

    __tablename__ = "email_events"
    __table_args__ = (
        UniqueConstraint("sg_event_id", name="uq_email_events_sg_event_id"),
        Index("ix_email_events_notification", "notification_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    sg_event_id: Mapped[str] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(32))
    notification_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("notifications.id", ondelete="CASCADE")
    )
    email: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = _created()


class PasswordReset(Base):
    """A single-use password reset token, stored as its SHA-256 only."""

    __tablename__ = "password_resets"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_password_resets_token_hash"),
        Index("ix_password_resets_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Outbound webhooks to the merchant (migration 0007, ``fulfillment.merchant_events``).


class WebhookEndpoint(Base):
    """A merchant's URL and the event types it subscribes to. The signing secret is
    shown once; after a rotation the previous one keeps signing until it expires."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = _uuid_pk()
    url: Mapped[str] = mapped_column(Text)
    #: Event types (``order.shipped``), or ``*`` for all.
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(server_default=text("false"))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: Since when every delivery to it has failed; cleared by any success.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class MerchantEvent(Base):
    """An order milestone, written by the orders trigger when an endpoint subscribes to
    its type: a stable id, a per-order sequence number, and the order row as it was."""

    __tablename__ = "merchant_events"
    __table_args__ = (
        UniqueConstraint("order_id", "sequence", name="uq_merchant_events_order_sequence"),
        Index("ix_merchant_events_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = _created()


class WebhookDelivery(Base):
    """One event for one endpoint, retried until it is answered 2xx or its time is up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'abandoned')",
            name="ck_webhook_deliveries_status",
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    event_id: Mapped[str] = mapped_column(ForeignKey("merchant_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    #: When the scheduler sends it (again); pushed on by a lease while a message is out.
    next_attempt_at: Mapped[datetime] = _created()
    #: Retries stop this long after it (``WEBHOOK_RETRY_FOR_SECONDS``); a redelivery resets it.
    retry_from: Mapped[datetime] = _created()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class WebhookAttempt(Base):
    """One attempt at a delivery, as ``GET …/webhook-endpoints/{id}/deliveries`` shows it."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    #: ``delivered`` (a 2xx) or ``failed``.
    outcome: Mapped[str] = mapped_column(String(16))
    response_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class Return(Base):
    """A customer's return of some of a delivered order's units (migration 0011). Its
    status only moves forward: ``requested`` -> ``label_created`` -> ``in_transit`` ->
    ``received`` -> ``refunded`` (or ``cancelled``); see ``fulfillment.returns``."""

    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("order_id", "request_key", name="uq_returns_order_request_key"),
        CheckConstraint(
            "status IN ('requested', 'label_created', 'in_transit', 'received', 'refunded', "
            "'cancelled')",
            name="ck_returns_status",
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    #: ``[{"product_id", "quantity"}]``: what the customer sends back.
    lines: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    reason: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), server_default="requested")
    #: The client's Idempotency-Key (optional) and the request's body, hashed.
    request_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    #: The EasyPost return shipment (reference ``return_<id>``) and its label.
    shipment_id: Mapped[str | None] = mapped_column(String(255))
    tracking_code: Mapped[str | None] = mapped_column(String(255))
    label_url: Mapped[str | None] = mapped_column(Text)
    #: ``[{"product_id", "quantity", "condition"}]``: what the warehouse received.
    received_lines: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("refunds.id"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
