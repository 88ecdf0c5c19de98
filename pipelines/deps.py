"""What the steps work with, built once per worker process by the composition root
(``workers.wiring.build_deps``; or by a test, with in-memory doubles for the providers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from fulfillment.settings import Settings
from integrations.ports import Carrier, Mailer, PaymentGateway
from integrations.tax_port import TaxCalculator
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
    #: Sends an e-mail a step claimed, once the step's commit is done
    #: (``pipelines.mail.notify.send_claimed``). Handed in here, so what claims it
    #: (``pipelines.mail.claim``, on the steps' kernel) never imports the stage that sends it.
    send_mail: Callable[..., None]
    now: Callable[[], datetime] = field(default=utcnow)
    #: Marks e-mails sent in groups (a worker process's); None writes each at once.
    sent_mail: SentMailLog | None = None
    #: Stripe Tax: records an order's tax when its money is captured and reverses it with
    #: refunds (``pipelines.payments.tax``). Only orders placed on a quote use it; a test
    #: whose orders have no tax calculation leaves it out.
    tax: TaxCalculator | None = None
