"""Outbound webhooks to the merchant (migration 0007, ``fulfillment.merchant_events``):
endpoints, the events written by the orders trigger, deliveries and attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk


class WebhookEndpoint(Base):
    """A merchant's URL and the event types it subscribes to. The signing secret is
    shown once; after a rotation the previous one keeps signing until it expires."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = uuid_pk()
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
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


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
    created_at: Mapped[datetime] = created_column()


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
    next_attempt_at: Mapped[datetime] = created_column()
    #: Retries stop this long after it (``WEBHOOK_RETRY_FOR_SECONDS``); a redelivery resets it.
    retry_from: Mapped[datetime] = created_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()


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
    created_at: Mapped[datetime] = created_column()
