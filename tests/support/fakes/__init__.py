"""In-memory doubles of the three provider ports (``integrations.ports``) for tests that
call the pipeline steps directly.

They keep what the real providers keep and honour idempotency the way the real ones do:
Stripe replays a PaymentIntent or a refund for a repeated idempotency key (derived from
the order), EasyPost finds the label already bought for a shipment reference, and
SendGrid - which has no keys - accepts every send, so a duplicate e-mail shows up
as a second entry in ``FakeMailer.sent``. Each counts its real effects (money taken,
refunds, labels bought, mails accepted) separately from the calls made, and each is
safe to call from many threads at once."""

from tests.support.fakes.carrier import FakeCarrier
from tests.support.fakes.common import permanent, transient
from tests.support.fakes.mailer import FakeMailer, Mail
from tests.support.fakes.payments import (
    CANCELABLE,
    DEFAULT_OUTCOMES,
    PROCESSING_METHOD,
    SEARCH_LAG_SECONDS,
    FakePayments,
)

__all__ = [
    "CANCELABLE",
    "DEFAULT_OUTCOMES",
    "PROCESSING_METHOD",
    "SEARCH_LAG_SECONDS",
    "FakeCarrier",
    "FakeMailer",
    "FakePayments",
    "Mail",
    "permanent",
    "transient",
]
