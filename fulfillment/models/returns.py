"""Returns: a customer sending back some of a delivered order's units."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk


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

    id: Mapped[uuid.UUID] = uuid_pk()
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
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
