"""The accounts: users, their refresh sessions and their password resets.

The database keeps one account per e-mail, compared case-insensitively."""

from __future__ import annotations

import uuid
from datetime import datetime

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
from sqlalchemy.orm import Mapped, mapped_column

from fulfillment.models.base import Base, created_column, updated_column, uuid_pk


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('customer', 'admin')", name="ck_users_role"),
        CheckConstraint(
            "email_status IN ('ok', 'bounced', 'complained')", name="ck_users_email_status"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(Text)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), server_default="customer")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
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

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The account's token version when the session was issued: one older than the
    #: account's (a reset or a password change since) refreshes nothing (migration 0014).
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")


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
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
