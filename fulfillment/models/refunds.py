"""Refunds: money given back for an order (the order's own payment columns live on
``Order``)."""

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
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk


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

    id: Mapped[uuid.UUID] = uuid_pk()
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    #: What is given back, in minor units: the lines' prices and their tax share, any
    #: shipping refunded and its tax (migration 0021).
    amount: Mapped[int] = mapped_column(BigInteger)
    #: Of ``amount``, the tax (reversed at Stripe Tax once the refund succeeds) and the
    #: shipping (its tax in ``tax_amount``).
    tax_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    shipping_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: The Stripe Tax reversal that gave ``tax_amount`` back, once made.
    tax_reversal_id: Mapped[str | None] = mapped_column(String(255))
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
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
