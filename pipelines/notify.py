"""E-mails, at most one per (order, kind) and one welcome per customer.

The intent row is claimed (pending -> sending) and committed before SendGrid is called,
so a duplicate message, a retry or a second worker never sends it again. A send that
failed before SendGrid took it (refused connection, 429, 5xx) goes back to pending and
is retried. A send that timed out, or a worker killed in the middle of one, may have
reached SendGrid: it is marked failed (or left ``sending``) and never sent twice.
"""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update

from fulfillment.models import Notification, User
from fulfillment.notifications import intent_insert
from integrations.errors import PermanentProviderError, ProviderError
from integrations.ports import NotificationKind
from integrations.retry import is_ambiguous
from pipelines.common import FAILED, SKIPPED, SUCCESS, begin
from pipelines.deps import Deps


def send_welcome_email(deps: Deps, user_id: str, *, attempt: int = 1) -> str:
    with begin(deps) as session:
        session.execute(intent_insert(NotificationKind.WELCOME, user_id=uuid.UUID(user_id)))
        notification_id = session.scalar(
            select(Notification.id).where(
                Notification.user_id == uuid.UUID(user_id),
                Notification.kind == NotificationKind.WELCOME.value,
                Notification.order_id.is_(None),
            )
        )
    return send_notification(deps, str(notification_id), attempt=attempt)


#: Claim a pending e-mail (pending -> sending) and read what it needs, in one statement.
#: A duplicate running at the same time waits for the row, then finds it claimed.
_CLAIM = (
    update(Notification)
    .where(Notification.id == bindparam("notification_id"), Notification.status == "pending",
           User.id == Notification.user_id)
    .values(status="sending")
    .returning(Notification.kind, Notification.order_id, Notification.user_id,
               Notification.data, User.email, User.first_name, User.last_name)
)  # fmt: skip


def send_notification(deps: Deps, notification_id: str, *, attempt: int = 1) -> str:
    with begin(deps) as session:
        row = session.execute(_CLAIM, {"notification_id": int(notification_id)}).first()
        if row is None:
            return SKIPPED  # sent, being sent, or given up on
        mail = {
            "kind": row.kind,
            "to_email": row.email,
            "to_name": f"{row.first_name} {row.last_name}".strip(),
            "order_id": str(row.order_id) if row.order_id else None,
            "user_id": str(row.user_id),
            "data": dict(row.data),
        }
    try:
        sent = deps.mailer.send(mail.pop("kind"), **mail)
    except PermanentProviderError as exc:
        _finish(deps, notification_id, status="failed", error=str(exc))
        return FAILED
    except ProviderError as exc:
        if is_ambiguous(exc):  # SendGrid may have sent it: at most once means not again
            _finish(deps, notification_id, status="failed", error=f"not resent: {exc}")
            return FAILED
        _finish(deps, notification_id, status="pending", error=str(exc))
        raise
    _finish(deps, notification_id, status="sent", message_id=sent.message_id)
    return SUCCESS


def _finish(
    deps: Deps,
    notification_id: str,
    *,
    status: str,
    error: str | None = None,
    message_id: str | None = None,
) -> None:
    values: dict = {"status": status, "error": error}
    if status == "sent":
        values |= {"provider_message_id": message_id, "sent_at": deps.now()}
    with begin(deps) as session:
        session.execute(
            update(Notification).where(Notification.id == int(notification_id)).values(values)
        )
