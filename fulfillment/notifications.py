"""Notification intents: the row saying "send this e-mail once", written in the same
transaction as the change that calls for it: either pending, with the outbox message
that sends it, or already claimed by the step that writes it, which sends it itself
once its transaction has committed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert

from fulfillment.models import Notification, User


def dedup_key(kind: str, *, order_id: uuid.UUID | str | None, user_id: uuid.UUID | str) -> str:
    """At most one e-mail per (order, kind), or per (user, kind) outside an order."""
    return f"order_{order_id}_{kind}" if order_id is not None else f"user_{user_id}_{kind}"


def intent_insert(
    kind: str,
    *,
    user_id: uuid.UUID,
    order_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: a second intent for the same
    (order, kind) returns no row, and then no message is sent either."""
    return (
        insert(Notification)
        .values(
            dedup_key=dedup_key(kind, order_id=order_id, user_id=user_id),
            kind=kind,
            user_id=user_id,
            order_id=order_id,
            data=data or {},
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(Notification.id)
    )


def claimed_intent(
    kind: str,
    *,
    user_id: uuid.UUID,
    order_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> Select:
    """The intent inserted already claimed (``sending``) by the caller, returning what
    the send needs (id, kind, order, customer, data, e-mail address and name) in the
    same statement; no row when the (order, kind) e-mail exists already."""
    stored = (
        intent_insert(kind, user_id=user_id, order_id=order_id, data=data)
        .values(status="sending")
        .returning(Notification.id, Notification.kind, Notification.order_id,
                   Notification.user_id, Notification.data)
        .cte("stored")
    )  # fmt: skip
    return select(
        stored.c.id, stored.c.kind, stored.c.order_id, stored.c.user_id, stored.c.data,
        User.email, User.first_name, User.last_name,
    ).join(User, User.id == stored.c.user_id)  # fmt: skip
