"""Refunds Stripe settles after its call answered: a ``pending`` one that succeeds or
fails later, and a card refund that had ``succeeded`` and fails afterwards (a closed
card; Stripe's ``pm_card_refundFail``). Nothing is called refunded that the customer did
not get; events come late and twice; a refund waiting at Stripe is polled, not rescued.
Each test asserts what the in-memory Stripe holds as well as our rows."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Refund
from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.intake.provider_events import process_webhook
from pipelines.payments.compensation import refund_payment
from pipelines.payments.refunds import process_refund, refund_changed
from tests.support.money import deps_capturing, kinds_of_mail, refund_rows
from tests.support.provider_webhooks import queued_event_id, stripe_headers
from tests.support.steps import advance, api_order, cancel, order, outbox
from tests.support.storefront import customer_token
from workers.sweeper import poll_refunds_at_stripe, redrive_refund_rows, redrive_refunds


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return deps_capturing(engine, settings, payments, mailer, carrier, at="order")


async def cancelled_paid_order(client, deps, engine) -> str:
    """A paid order the customer cancels: its compensation refunds the charge."""
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    assert (await cancel(client, order_id, token)).status == 200
    return order_id


def refund_event(kind: str, refund, order_id: str) -> bytes:
    body = {"id": refund.id, "object": "refund", "status": refund.status,
            "amount": refund.amount, "payment_intent": refund.payment_id,
            "failure_reason": refund.failure_reason, "metadata": {"order_id": order_id}}  # fmt: skip
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
             "created": int(time.time()), "data": {"object": body}}  # fmt: skip
    return json.dumps(event).encode()


async def post_refund_event(client, settings, kind: str, refund, order_id: str) -> None:
    payload = refund_event(kind, refund, order_id)
    secret = settings.stripe_webhook_secret.get_secret_value()
    response = await client.post("/v1/webhooks/stripe", data=payload,
                                 headers=stripe_headers(payload, secret))  # fmt: skip
    assert response.status == 200, await response.text()


async def test_a_refund_stripe_settles_later_is_not_called_refunded_until_it_has(
    client, deps, engine, payments, settings
):
    # Given a cancelled paid order whose refund Stripe takes as pending
    order_id = await cancelled_paid_order(client, deps, engine)
    payments.refund_status = "pending"

    # When the compensation asks for it
    assert refund_payment(deps, order_id) == SKIPPED

    # Then nothing says "refunded" yet: the row waits with Stripe's id, the order waits
    # with the refund due, and the sweeper polls it without calling it a rescue
    (refund,) = payments.refunds.values()
    assert refund_rows(engine, order_id) == [("compensation", "compensation", "pending")]
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due, kept.amount_refunded) == (
        S.CANCELLED, True, refund.amount)  # fmt: skip
    assert kept.payment_status != "refunded" and "refunded" not in kinds_of_mail(engine, order_id)
    assert redrive_refunds(engine, stall=timedelta(0)) == 0
    assert redrive_refund_rows(engine, stall=timedelta(0)) == 0
    assert poll_refunds_at_stripe(engine, stall=timedelta(0)) == 1
    assert process_refund(deps, str(_row_id(engine, order_id))) == SKIPPED  # still pending
    assert payments.calls["refund"] == 1  # read again, never asked for twice

    # When Stripe settles it and says so, twice
    payments.settle_refund_later(refund.id, "succeeded")
    await post_refund_event(client, settings, "refund.updated", refund, order_id)
    assert process_webhook(deps, queued_event_id(engine)) == SUCCESS
    await post_refund_event(client, settings, "refund.updated", refund, order_id)
    assert process_webhook(deps, queued_event_id(engine)) == SKIPPED

    # Then the refund is settled once and the compensation finishes the order
    assert refund_rows(engine, order_id) == [("compensation", "compensation", "succeeded")]
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) >= 1
    assert refund_payment(deps, order_id) == SUCCESS
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due, kept.payment_status) == (
        S.CANCELLED, False, "refunded")  # fmt: skip
    assert kinds_of_mail(engine, order_id).count("refunded") == 1
    assert payments.calls["refund"] == 1


async def test_a_pending_refund_that_fails_gives_its_amount_back_and_reaches_an_operator(
    client, deps, engine, payments, settings
):
    # Given a cancelled paid order whose compensation refund is pending at Stripe
    order_id = await cancelled_paid_order(client, deps, engine)
    payments.refund_status = "pending"
    assert refund_payment(deps, order_id) == SKIPPED
    (refund,) = payments.refunds.values()

    # When Stripe fails it, and the sweeper's poll reads it
    payments.settle_refund_later(refund.id, "failed", "lost_or_stolen_card")
    assert poll_refunds_at_stripe(engine, stall=timedelta(0)) == 1
    assert process_refund(deps, str(_row_id(engine, order_id))) == FAILED

    # Then nothing says refunded: the amount counts as not refunded, and an operator has
    # the order with the reason, the refund still due
    assert refund_rows(engine, order_id) == [("compensation", "compensation", "failed")]
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due, kept.amount_refunded) == (S.NEEDS_ATTENTION, True, 0)
    assert "lost_or_stolen_card" in kept.last_error
    assert "refunded" not in kinds_of_mail(engine, order_id)


async def test_a_refund_that_succeeded_and_fails_afterwards_is_taken_back_once(
    client, deps, engine, payments, settings
):
    # Given a cancelled paid order refunded in full, as Stripe first answered
    order_id = await cancelled_paid_order(client, deps, engine)
    assert refund_payment(deps, order_id) == SUCCESS
    (refund,) = payments.refunds.values()
    assert order(engine, order_id).payment_status == "refunded"

    # When Stripe fails that refund afterwards (a closed card) and says so twice, in
    # both its event types
    payments.settle_refund_later(refund.id, "failed", "expired_or_canceled_card")
    await post_refund_event(client, settings, "refund.failed", refund, order_id)
    assert process_webhook(deps, queued_event_id(engine)) == FAILED
    await post_refund_event(client, settings, "refund.updated", refund, order_id)
    assert process_webhook(deps, queued_event_id(engine)) == SKIPPED

    # Then the money counts as not given back, once, and an operator has the order
    assert refund_rows(engine, order_id) == [("compensation", "compensation", "failed")]
    kept = order(engine, order_id)
    assert (kept.amount_refunded, kept.payment_status) == (0, "captured")
    assert (kept.status, kept.attention_from) == (S.NEEDS_ATTENTION, S.CANCELLED)
    assert "expired_or_canceled_card" in kept.last_error


async def test_an_event_for_a_refund_not_ours_or_still_succeeded_changes_nothing(
    client, deps, engine, payments
):
    # Given a refunded order
    order_id = await cancelled_paid_order(client, deps, engine)
    assert refund_payment(deps, order_id) == SUCCESS
    (refund,) = payments.refunds.values()
    before = order(engine, order_id)

    # When events arrive for it as it is, and for a refund made elsewhere
    assert refund_changed(deps, order_id, refund.id) == SKIPPED
    assert refund_changed(deps, order_id, "re_made_in_the_dashboard") == SKIPPED

    # Then nothing moved
    after = order(engine, order_id)
    assert (after.status, after.amount_refunded, after.payment_status) == (
        before.status, before.amount_refunded, before.payment_status)  # fmt: skip
    assert refund_rows(engine, order_id) == [("compensation", "compensation", "succeeded")]


def _row_id(engine, order_id: str):
    with Session(engine) as session:
        return session.scalar(select(Refund.id).where(Refund.order_id == uuid.UUID(order_id)))
