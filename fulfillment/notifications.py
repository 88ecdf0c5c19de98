"""Notification intents: the row saying "send this e-mail once", written in the same
transaction as the change that calls for it: either pending, with the outbox message
that sends it, or already claimed by the step that writes it, which sends it itself
once its transaction has committed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert

from fulfillment.models import Notification, User

#: Data keys that hold a secret (a password reset's token and link): they leave the
#: notification row in the statement that claims its mail for sending
#: (``pipelines.mail.notify``), and come back only if the send failed before SendGrid took it.
SECRET_DATA = ("token", "reset_url")


def dedup_key(
    kind: str,
    *,
    order_id: uuid.UUID | str | None,
    user_id: uuid.UUID | str,
    once_per: str | None = None,
) -> str:
    """At most one e-mail per (order, kind), or per (user, kind) outside an order; with
    ``once_per`` (a refund's id, say), one per (order, kind, that)."""
    key = f"order_{order_id}_{kind}" if order_id is not None else f"user_{user_id}_{kind}"
    return f"{key}_{once_per}" if once_per else key


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


_CLAIMED = (
    insert(Notification)
    .values(dedup_key=bindparam("b_key"), kind=bindparam("b_kind"), user_id=bindparam("b_user"),
            order_id=bindparam("b_order"), data=bindparam("b_data"), status="sending")
    .on_conflict_do_nothing(index_elements=["dedup_key"])
    .returning(Notification.id, Notification.kind, Notification.order_id,
               Notification.user_id, Notification.data, Notification.dedup_key)
    .cte("claimed")
)  # fmt: skip
#: The intent inserted already claimed (``sending``), returning what the send needs.
CLAIMED_INTENT = select(
    _CLAIMED.c.id, _CLAIMED.c.kind, _CLAIMED.c.order_id, _CLAIMED.c.user_id, _CLAIMED.c.data,
    User.email, User.first_name, User.last_name, _CLAIMED.c.dedup_key, User.email_status,
).join(User, User.id == _CLAIMED.c.user_id)  # fmt: skip


def claimed_intent(
    kind: str,
    *,
    user_id: uuid.UUID,
    order_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    once_per: str | None = None,
) -> tuple[Select, dict[str, Any]]:
    """``CLAIMED_INTENT`` and its parameters: the intent inserted already claimed by the
    caller, returning what the send needs (id, kind, order, customer, data, e-mail
    address and name) in the same statement; no row when the (order, kind) e-mail
    exists already. A secret never goes this way: the row would keep it while it is
    sent (a secret's mail is written pending and claimed by ``pipelines.mail.notify``)."""
    if data and not data.keys().isdisjoint(SECRET_DATA):
        raise ValueError(f"{kind}: a mail with a secret is written pending, not claimed")
    return CLAIMED_INTENT, {
        "b_key": dedup_key(kind, order_id=order_id, user_id=user_id, once_per=once_per),
        "b_kind": kind,
        "b_user": user_id, "b_order": order_id, "b_data": data or {},
    }  # fmt: skip
