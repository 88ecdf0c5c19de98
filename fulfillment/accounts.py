"""Operator accounts, created from the command line."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import User
from fulfillment.passwords import hash_password


def upsert_admin(session: Session, *, email: str, password: str) -> bool:
    """Creates the admin, or makes an existing account an admin with this password.
    Returns True when the account is new."""
    email = email.strip().lower()
    user = session.scalar(select(User).where(func.lower(User.email) == email))
    created = user is None
    if user is None:
        user = User(email=email, first_name="Admin", last_name="Operator")
        session.add(user)
    user.password_hash = hash_password(password)
    user.role = "admin"
    user.is_active = True
    session.flush()
    return created
