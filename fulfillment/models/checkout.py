"""Checkout quotes: what an order would cost before it is placed (its lines priced from
the catalogue, its shipping options and the tax on each), kept for its customer until
it expires."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, uuid_pk


class Quote(Base):
    """One quote. ``items``: ``[{"product_id", "quantity", "unit_amount", "tax_code"}]``
    as priced; ``options``: ``[{"id", "carrier", "service", "delivery_days", "shipping",
    "tax", "total", "estimated", "tax_calculation", "line_taxes"}]`` in minor units, each
    with the Stripe Tax calculation it was priced by (recorded at capture)."""

    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint("subtotal >= 0", name="ck_quotes_subtotal"),
        CheckConstraint("currency ~ '^[a-z]{3}$'", name="ck_quotes_currency"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    subtotal: Mapped[int] = mapped_column(BigInteger)
    options: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
