"""The charge step (``request_payment``, ``settle_payment``) with the card captured at
order: it charges once, a decline cancels and gives the stock back, a processing
payment waits and is settled later, and a redrive a day later charges nothing again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Fulfillment
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.operations.attention import mark_needs_attention, resume
from pipelines.payments.payment import request_payment, settle_payment
from tests.support.fakes import PROCESSING_METHOD
from tests.support.steps import (
    DELIVERIES,
    commits_of,
    given_order,
    mails,
    notification_of,
    order,
    outbox,
    status,
    stock,
    transitions,
    twice,
)


@DELIVERIES
def test_request_payment_charges_once(deps, engine, payments, mailer, run):
    # Given a reserved order
    order_id, _ = given_order(deps, engine, at=S.RESERVED)

    # When its payment step runs more than once
    outcomes = run(lambda: request_payment(deps, order_id))

    # Then the card is charged once, and the order is paid and packed once, in one go
    assert outcomes.count(SUCCESS) == 1
    assert len(payments.payments_for(order_id)) == 1 and len(payments.money_taken) == 1
    assert status(engine, order_id) == S.FULFILLING
    assert order(engine, order_id).payment_intent_id == payments.money_taken[0].id
    for reached in (S.PAYMENT_PENDING, S.PAID, S.FULFILLING):
        assert transitions(engine, order_id, reached) == 1, reached
    with Session(engine) as session:
        assert [p.parcel_weight_oz for p in session.scalars(select(Fulfillment))] == [24]
    # reserved -> payment_pending -> paid -> fulfilling, and the parcel, in one commit
    assert commits_of(engine, order_id, S.PAYMENT_PENDING, S.PAID, S.FULFILLING) == 1
    # and nothing is queued: the same message buys the label next
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    # and the confirmation was sent once, at once
    assert mails(engine, mailer, order_id) == ["order_confirmed"]


def test_a_declined_card_cancels_the_order_and_gives_the_stock_back(
    deps, engine, payments, mailer, carrier
):
    # Given a reserved order (2 of 5 units) paid with a card that will be declined
    order_id, product = given_order(
        deps, engine, at=S.RESERVED, payment_method="pm_card_chargeDeclined"
    )

    # When the payment is requested, and the message is delivered again
    outcomes = twice(lambda: run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id))

    # Then nothing was charged, the order is cancelled, the stock is back, and the
    # customer is told once why
    assert outcomes == [FAILED, SKIPPED]
    assert payments.money_taken == []
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert order(engine, order_id).stock_state == "released"
    assert mails(engine, mailer, order_id) == ["payment_failed"]
    assert notification_of(engine, order_id, "payment_failed").data == {"reason": "card_declined"}
    # and the failed charge ended the message: no label was asked for
    assert carrier.calls["ship"] == 0 and transitions(engine, order_id, S.PAID) == 0


def test_a_processing_payment_waits_and_is_settled_as_paid_later(
    deps, engine, payments, mailer, carrier
):
    # Given a reserved order paid by a method that takes time to clear
    order_id, product = given_order(deps, engine, at=S.RESERVED, payment_method=PROCESSING_METHOD)

    # When the payment is requested (the message goes on to the label)
    assert run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id) == SUCCESS

    # Then the order waits in payment_pending, its stock still held, nothing shipped
    assert status(engine, order_id) == S.PAYMENT_PENDING
    assert stock(engine, product) == (5, 2)
    assert carrier.calls["ship"] == 0
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    assert settle_payment(deps, order_id) == SUCCESS  # asked again: still processing
    assert status(engine, order_id) == S.PAYMENT_PENDING

    # When the payment clears and the order is settled (twice: webhook and sweeper)
    (intent,) = payments.payments_for(order_id)
    payments.complete(intent.id)
    outcomes = twice(lambda: run_steps(deps, m.SETTLE_PAYMENT, order_id=order_id))

    # Then it is paid, packed and shipped once, by the first of them
    assert outcomes == [SUCCESS, SKIPPED]
    assert status(engine, order_id) == S.SHIPPED
    for reached in (S.PAID, S.FULFILLING, S.SHIPPED):
        assert transitions(engine, order_id, reached) == 1, reached
    assert carrier.lookups == [False] and stock(engine, product) == (3, 0)
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped"]
    assert len(payments.money_taken) == 1


def test_a_charge_redriven_a_day_later_does_not_charge_again(deps, engine, payments):
    # Given a reserved order whose charge went through at Stripe, but the answer was lost
    order_id, _ = given_order(deps, engine, at=S.RESERVED)
    payments.lose_next("charge")
    with pytest.raises(TransientProviderError):
        request_payment(deps, order_id)
    # and Stripe stayed unreachable until the retries ran out: the order was dead-lettered
    assert mark_needs_attention(deps, order_id, step="request_payment", attempt=13, error="timeout")

    # When an operator redrives it the next day (Stripe has pruned the idempotency key)
    payments.forget_idempotency_keys()
    payments.catch_up()  # and Stripe's search has long shown the first PaymentIntent
    next_day = replace(deps, now=lambda: datetime.now(UTC) + timedelta(days=1))
    assert resume(next_day, order_id) == "reserved"
    assert run_steps(next_day, m.REQUEST_PAYMENT, order_id=order_id) == SUCCESS

    # Then the customer was charged once, and the order is paid with that charge and shipped
    assert len(payments.money_taken) == 1, "the customer was charged twice for one order"
    assert order(engine, order_id).payment_intent_id == payments.money_taken[0].id
    assert transitions(engine, order_id, S.PAID) == 1
    assert status(engine, order_id) == S.SHIPPED
