"""What the steps work with, built once per worker process by the boot hook (or by a
test, with in-memory doubles for the providers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from fulfillment.settings import Settings
from integrations.ports import Carrier, Mailer, PaymentGateway
from pipelines.mail.sent import SentMailLog


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    sessions: sessionmaker[Session]
    payments: PaymentGateway
    mailer: Mailer
    carrier: Carrier
    settings: Settings
    now: Callable[[], datetime] = field(default=utcnow)
    #: Marks e-mails sent in groups (a worker process's); None writes each at once.
    sent_mail: SentMailLog | None = None
