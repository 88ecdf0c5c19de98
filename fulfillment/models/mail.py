"""Mail: the e-mails we mean to send (at most once) and SendGrid's events about them."""

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
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column


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
    created_at: Mapped[datetime] = created_column()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
    received_at: Mapped[datetime] = created_column()
