"""Notification intents: the row saying "send this e-mail once", written in the same
transaction as the change that calls for it, with the outbox message that sends it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import Insert

from fulfillment.models import Notification


def dedup_key(kind: str, *, order_id: uuid.UUID | None, user_id: uuid.UUID) -> str:
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
