"""``fulfillment verify``'s account checks: no live refresh session behind its account's
token version (a session a password reset or change should have ended: ``api.users.sessions``),
and no password reset token left in a notification row past its send
(``pipelines.mail.notify`` takes it out when it claims the mail)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Text, and_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from fulfillment.models import Notification, RefreshSession, User
from fulfillment.notifications import SECRET_DATA


class Violations(Protocol):
    violations: list[str]


#: Live sessions (neither used, revoked nor expired) older than their account's version.
_STALE_SESSIONS = (
    select(RefreshSession.user_id, func.count(), func.min(RefreshSession.token_version),
           User.token_version)
    .join(User, User.id == RefreshSession.user_id)
    .where(RefreshSession.revoked_at.is_(None), RefreshSession.used_at.is_(None),
           RefreshSession.expires_at > func.now(),
           RefreshSession.token_version < User.token_version)
    .group_by(RefreshSession.user_id, User.token_version)
)  # fmt: skip

#: Mails past their claim that still hold a secret.
_KEPT_SECRETS = select(Notification.id, Notification.kind, Notification.status).where(
    and_(Notification.status != "pending",
         Notification.data.op("?|")(literal(list(SECRET_DATA), ARRAY(Text))))
)  # fmt: skip


def check_sessions(session: Session, report: Violations) -> None:
    for user_id, count, oldest, version in session.execute(_STALE_SESSIONS):
        report.violations.append(
            f"account {user_id}: {count} live refresh session(s) of token version {oldest}, "
            f"older than the account's {version} (issued before its last new password)"
        )
    for notification_id, kind, status in session.execute(_KEPT_SECRETS):
        report.violations.append(
            f"notification {notification_id} ({kind}, {status}) still holds its secret "
            f"({', '.join(SECRET_DATA)}) after it was claimed"
        )
