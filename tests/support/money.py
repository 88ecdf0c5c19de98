"""What Stripe (the in-memory double of ``tests.support.fakes``) holds of an order's money
and what our rows say of it, for the tests of two writers on one order's money (issue
21), and steps that capture at order or at shipment."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Notification, Refund
from tests.support.steps import make_deps


def deps_capturing(engine, settings, payments, mailer, carrier, *, at: str):
    """Steps that capture at ``order`` (a charge) or at ``shipment`` (an authorization)."""
    policy = settings.model_copy(update={"payment_capture": at})
    return make_deps(engine, policy, payments, mailer, carrier)


def kinds_of_mail(engine, order_id: str) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Notification.kind).where(
            Notification.order_id == uuid.UUID(order_id)).order_by(Notification.id)))  # fmt: skip


def refund_rows(engine, order_id: str) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.execute(select(Refund.source, Refund.request_key, Refund.status).where(
            Refund.order_id == uuid.UUID(order_id)).order_by(Refund.created_at)).all()  # fmt: skip
    return [tuple(row) for row in rows]


def given_back(payments, intent_id: str) -> int:
    """What Stripe refunded of the intent."""
    return sum(r.amount for r in payments.refund_keys.values() if r.payment_id == intent_id)


def assert_stripe_keeps_nothing(payments, order_id: str) -> None:
    (intent,) = payments.payments_for(order_id)
    intent = payments.intents[intent.id]
    if not intent.succeeded:
        assert intent.status == "canceled", f"the authorization is {intent.status} at Stripe"
    else:
        assert intent.succeeded and given_back(payments, intent.id) == intent.amount_received, (
            f"Stripe keeps {intent.amount_received - given_back(payments, intent.id)}"
        )
