"""The in-memory SendGrid (``integrations.ports`` mailer): it has no keys and accepts every
send, so a duplicate e-mail shows up as a second entry in ``FakeMailer.sent``."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrations.errors import ProviderError
from integrations.ports import NotificationKind, SentMail
from tests.support.fakes.common import _Faults, _new_id


@dataclass(frozen=True)
class Mail:
    """One mail SendGrid accepted."""

    kind: str
    to_email: str
    to_name: str | None
    order_id: str | None
    user_id: str | None
    data: dict[str, Any]
    dedup_key: str
    message_id: str


class FakeMailer:
    """SendGrid's Mail Send: every accepted send is one e-mail (SendGrid has no
    idempotency keys; the steps must not send twice). ``fail_next`` makes the next
    sends raise, e.g. ``transient("sendgrid", "send_mail")``."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.calls = 0
        self._faults = _Faults()
        self._lock = threading.Lock()

    def fail_next(self, error: ProviderError, *, times: int = 1) -> None:
        with self._lock:
            self._faults.fail_next("send_mail", error, times=times)

    def send(
        self,
        kind: NotificationKind | str,
        *,
        to_email: str,
        to_name: str | None = None,
        order_id: str | None = None,
        user_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        dedup_key: str | None = None,
    ) -> SentMail:
        kind = NotificationKind(kind)
        owner = f"order_{order_id}" if order_id is not None else f"user_{user_id}"
        with self._lock:
            self.calls += 1
            self._faults.check("send_mail")
            mail = Mail(kind=kind.value, to_email=to_email, to_name=to_name, order_id=order_id,
                        user_id=user_id, data=dict(data or {}),
                        dedup_key=dedup_key or f"{owner}_{kind.value}",
                        message_id=_new_id("msg"))  # fmt: skip
            self.sent.append(mail)
        return SentMail(message_id=mail.message_id, kind=kind, dedup_key=mail.dedup_key)

    def kinds(self, *, order_id: str | None = None, user_id: str | None = None) -> list[str]:
        """The kinds of mail sent about an order (or to a user), in sending order."""
        with self._lock:
            return [
                mail.kind
                for mail in self.sent
                if (order_id is None or mail.order_id == str(order_id))
                and (user_id is None or mail.user_id == str(user_id))
            ]
