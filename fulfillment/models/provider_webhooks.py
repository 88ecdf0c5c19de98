"""Inbound provider webhooks (Stripe, SendGrid, EasyPost): stored once per
(provider, event id) and handed on."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column

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
    received_at: Mapped[datetime] = created_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
