"""E-mails, at most one per (order, kind) and one welcome per customer.

The intent row is claimed (written as ``sending`` by the step that calls for it, or
moved pending -> sending here) and committed before SendGrid is called,
so a duplicate message, a retry or a second worker never sends it again. A send that
failed before SendGrid took it (refused connection, 429, 5xx) goes back to pending and
is retried. A send that timed out, or a worker killed in the middle of one, may have
reached SendGrid: it is marked failed (or left ``sending``) and never sent twice.

An address SendGrid reported as bouncing or complaining (``users.email_status``, set by
``api.intake.sendgrid``) gets only essential mail: a welcome or a delivery notice to
it is recorded ``suppressed`` and SendGrid is not called. What is essential is what the
customer must know about their money, their order or their account.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import Text, bindparam, literal, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import aliased

from fulfillment.messages import SEND_NOTIFICATION
from fulfillment.models import Notification, User
from fulfillment.notifications import SECRET_DATA, claimed_intent
from integrations.errors import PermanentProviderError, ProviderError
from integrations.ports import NotificationKind
from integrations.retry import is_ambiguous
from pipelines import sql
from pipelines.common import FAILED, SKIPPED, SUCCESS, begin, send_later
from pipelines.deps import Deps
from pipelines.mail.data import template_data

log = structlog.get_logger("pipelines.notify")

#: Mail a bounced or complaining address no longer gets: nice to have, not about the
#: customer's money, order or account. Every other kind (order confirmed, payment
#: failed, shipped, cancelled, refunded, password reset) is essential and still goes.
NON_ESSENTIAL: frozenset[str] = frozenset({NotificationKind.WELCOME, NotificationKind.DELIVERED})


def send_welcome_email(deps: Deps, user_id: str, *, attempt: int = 1) -> str:
    """Claim the customer's one welcome e-mail and send it; a second run finds it claimed."""
    with begin(deps) as session:
        claimed = sql.one(
            session, *claimed_intent(NotificationKind.WELCOME, user_id=uuid.UUID(user_id))
        )
    if claimed is None:
        return SKIPPED
    return _send(deps, claimed, retry_later=False)


#: The row as it was before the claim, whose data (a secret included) the send needs.
_BEFORE = aliased(Notification, name="before")
#: What a claimed row keeps of its data: all but a secret it carried (a reset token).
_WITHOUT_SECRETS = Notification.data.op("-")(literal(list(SECRET_DATA), ARRAY(Text)))

#: Claim a pending e-mail (pending -> sending) and read what it needs, in one statement.
#: A duplicate running at the same time waits for the row, then finds it claimed. A
#: secret leaves the row in the same statement: only this worker's memory holds it
#: while the mail is sent, so a worker dying before the mail is marked sent leaves none
#: behind; a send that fails before SendGrid took it puts it back (``_finish``).
_CLAIM = (
    update(Notification)
    .where(Notification.id == bindparam("notification_id"), Notification.status == "pending",
           User.id == Notification.user_id, _BEFORE.id == Notification.id)
    .values(status="sending", data=_WITHOUT_SECRETS)
    .returning(Notification.id, Notification.kind, Notification.order_id, Notification.user_id,
               _BEFORE.data.label("data"), User.email, User.first_name, User.last_name,
               Notification.dedup_key, User.email_status)
)  # fmt: skip


def send_notification(deps: Deps, notification_id: str, *, attempt: int = 1) -> str:
    """Claim a pending e-mail and send it (one a step could not send, or one written
    where nothing sends it at once: a webhook, a cancel through the API)."""
    with begin(deps) as session:
        claimed = sql.one(session, _CLAIM, {"notification_id": int(notification_id)})
        data = None if claimed is None else template_data(deps, claimed, session=session)
    if claimed is None:
        return SKIPPED  # sent, being sent, or given up on
    return _send(deps, claimed, retry_later=False, data=data)


def send_claimed(deps: Deps, claimed: Any, data: dict | None = None) -> None:
    """Send an e-mail a step claimed in the transaction that just committed (``data``:
    its template data, when composed at the claim). It never raises (the step's work
    is done): an e-mail SendGrid did not take goes back to pending with a
    ``send_notification`` message, so Dramatiq retries it with backoff."""
    try:
        _send(deps, claimed, retry_later=True, data=data)
    except Exception:
        log.exception("e-mail not sent", notification_id=claimed.id)


def _send(deps: Deps, claimed: Any, *, retry_later: bool, data: dict | None = None) -> str:
    """``data``: the template data, when the caller built it (``pipelines.mail.data``)."""
    mail = {
        "to_email": claimed.email,
        "to_name": f"{claimed.first_name} {claimed.last_name}".strip(),
        "order_id": str(claimed.order_id) if claimed.order_id else None,
        "user_id": str(claimed.user_id),
        "data": data,
        "dedup_key": claimed.dedup_key,
    }
    notification_id = claimed.id
    if claimed.kind in NON_ESSENTIAL and claimed.email_status != "ok":
        _finish(deps, notification_id, status="suppressed",
                error=f"not sent: the address is {claimed.email_status}")  # fmt: skip
        return SKIPPED
    if claimed.order_id:  # the e-mail's log lines belong to its order's
        structlog.contextvars.bind_contextvars(order_id=str(claimed.order_id))
    if data is None:
        try:
            mail["data"] = template_data(deps, claimed)
        except Exception as exc:  # the database, likely: nothing was sent, send it later
            _finish(deps, notification_id, status="pending", error=f"not composed: {exc}",
                    resend=retry_later, secrets=_secrets(claimed))  # fmt: skip
            if retry_later:
                return FAILED
            raise
    try:
        sent = deps.mailer.send(claimed.kind, **mail)
    except PermanentProviderError as exc:
        _finish(deps, notification_id, status="failed", error=str(exc))
        return FAILED
    except ProviderError as exc:
        if is_ambiguous(exc):  # SendGrid may have sent it: at most once means not again
            _finish(deps, notification_id, status="failed", error=f"not resent: {exc}")
            return FAILED
        _finish(deps, notification_id, status="pending", error=str(exc), resend=retry_later,
                secrets=_secrets(claimed))  # fmt: skip
        if retry_later:
            return FAILED
        raise
    if deps.sent_mail is not None:
        deps.sent_mail.record(notification_id, message_id=sent.message_id, sent_at=deps.now())
    else:
        _finish(deps, notification_id, status="sent", message_id=sent.message_id)
    return SUCCESS


def _secrets(claimed: Any) -> dict[str, Any]:
    """The secrets the claim took out of the row (``SECRET_DATA``)."""
    data = claimed.data or {}
    return {key: data[key] for key in SECRET_DATA if key in data}


def _finish(
    deps: Deps,
    notification_id: int,
    *,
    status: str,
    error: str | None = None,
    message_id: str | None = None,
    resend: bool = False,
    secrets: dict[str, Any] | None = None,
) -> None:
    values: dict = {"status": status, "error": error}
    if secrets:  # back to pending: the next claim's send needs them again
        values["data"] = Notification.data.op("||")(literal(secrets, JSONB))
    if status == "sent":
        values |= {"provider_message_id": message_id, "sent_at": deps.now()}
    with begin(deps) as session:
        session.execute(
            update(Notification).where(Notification.id == int(notification_id)).values(values)
        )
        if resend:
            send_later(session, SEND_NOTIFICATION, notification_id=notification_id)
