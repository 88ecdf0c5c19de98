"""Capture at shipment (``PAYMENT_CAPTURE=shipment``, the default): the card is authorized
at order and captured once when the goods ship, however often the message runs or its
answer is lost; a cancel before that voids the authorization. The steps run for real on
PostgreSQL; Stripe is the in-memory double (``tests.support.fakes``), whose keys behave
as Stripe's; the sandbox and the real gateway are in ``test_gateway_stripe_capture.py``."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Order
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.compensation import refund_payment
from pipelines.payments.payment import settle_payment
from tests.support.fakes import transient
from tests.support.steps import (
    DELIVERIES,
    advance,
    api_order,
    cancel,
    given_order,
    mails,
    make_deps,
    order,
    status,
    stock,
    transitions,
)
from tests.support.storefront import customer_token


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return make_deps(engine, settings, payments, mailer, carrier)


def test_the_default_policy_captures_at_shipment(settings):
    assert settings.payment_capture == "shipment"


@DELIVERIES
def test_one_message_authorizes_ships_and_then_captures_once(deps, engine, payments, mailer, run):
    # Given a pending order and the one message the API queued for it
    order_id, product = given_order(deps, engine, at=S.PENDING)

    # When that message is delivered more than once
    outcomes = run(lambda: run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id))

    # Then the order was authorized (never "paid" before shipping), shipped, and captured
    assert FAILED not in outcomes and SUCCESS in outcomes
    assert status(engine, order_id) == S.SHIPPED
    for reached in (S.RESERVED, S.AUTHORIZED, S.FULFILLING, S.SHIPPED):
        assert transitions(engine, order_id, reached) == 1, reached
    assert transitions(engine, order_id, S.PAID) == 0
    # and the card was captured once, for the amount authorized, after the label
    assert payments.captures == {order_id: 1}
    kept = order(engine, order_id)
    assert (kept.capture_method, kept.payment_status, kept.capture_due) == (
        "manual", "captured", False)  # fmt: skip
    assert kept.amount_captured == kept.amount_authorized == kept.total_amount
    assert kept.capture_before is not None
    assert stock(engine, product) == (3, 0)


@DELIVERIES
def test_the_capture_message_delivered_twice_captures_once(deps, engine, payments, run):
    # Given a shipped order whose capture is due (the step after the label did not run)
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    assert order(engine, order_id).capture_due

    # When the capture message comes twice, or on 8 threads at once
    outcomes = run(lambda: run_steps(deps, m.CAPTURE_PAYMENT, order_id=order_id))

    # Then one capture was made and kept, and the others did nothing
    assert outcomes.count(SUCCESS) == 1 and set(outcomes) <= {SUCCESS, SKIPPED}
    assert payments.captures == {order_id: 1}
    assert order(engine, order_id).payment_status == "captured"


def test_a_capture_whose_answer_was_lost_is_not_made_twice(deps, engine, payments):
    # Given a shipped order, and a capture Stripe makes but whose answer never arrives
    # (the worker died, or the connection dropped, right after Stripe captured)
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    payments.lose_next("capture")
    with pytest.raises(Exception):  # noqa: B017 (the provider error, retried by Dramatiq)
        capture_payment(deps, order_id)
    assert order(engine, order_id).capture_due  # nothing was kept

    # When the message is retried
    assert capture_payment(deps, order_id) == SUCCESS

    # Then Stripe captured once: the retry read the capture back, it did not make another
    assert payments.captures == {order_id: 1}
    assert order(engine, order_id).amount_captured == order(engine, order_id).total_amount


def test_a_capture_that_fails_for_good_sends_the_order_to_an_operator_not_to_a_refund(
    deps, engine, payments
):
    # Given a shipped order whose authorization Stripe let lapse before the capture
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    intent = order(engine, order_id).payment_intent_id
    payments.complete(intent, status="canceled")

    # When the capture runs
    assert capture_payment(deps, order_id) == FAILED

    # Then nothing was captured or refunded: the order waits for an operator, with why
    assert payments.captures == {} and payments.refunds == {}
    kept = order(engine, order_id)
    assert kept.status == S.NEEDS_ATTENTION and kept.attention_from == S.SHIPPED
    assert "before it was captured" in kept.last_error and not kept.capture_due


@pytest.mark.parametrize("at", [S.AUTHORIZED, S.FULFILLING])
async def test_a_cancel_before_shipping_voids_the_authorization_and_refunds_nothing(
    client, deps, engine, payments, mailer, at
):
    # Given an authorized order
    token = await customer_token(client)
    order_id, product = await api_order(client, engine, token)
    given = S.FULFILLING if at == S.AUTHORIZED else at
    advance(deps, order_id, to=given)
    if at == S.AUTHORIZED:
        with Session(engine) as session, session.begin():
            session.execute(update(Order).where(Order.id == uuid.UUID(order_id))
                            .values(status=S.AUTHORIZED.value))  # fmt: skip

    # When the customer cancels and the compensation's money step runs
    response = await cancel(client, order_id, token)
    assert response.status == 200, await response.text()
    assert refund_payment(deps, order_id) == SUCCESS

    # Then the authorization was voided: no capture, no refund, stock back, one e-mail
    intent = payments.intents[order(engine, order_id).payment_intent_id]
    assert intent.status == "canceled"
    assert payments.captures == {} and payments.refunds == {}
    kept = order(engine, order_id)
    assert (kept.status, kept.payment_status, kept.amount_captured) == (
        S.CANCELLED, "voided", 0)  # fmt: skip
    assert stock(engine, product) == (5, 0)
    sent = mails(engine, mailer, order_id, waiting=frozenset({"cancelled"}))
    assert sent.count("cancelled") == 1 and "refunded" not in sent


def test_a_late_authorized_event_after_the_capture_changes_nothing(deps, engine, payments):
    # Given a shipped and captured order
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    capture_payment(deps, order_id)

    # When a reordered amount_capturable_updated event has it settled again
    assert settle_payment(deps, order_id) == SKIPPED

    # Then nothing moved back and nothing was captured again
    kept = order(engine, order_id)
    assert (kept.status, kept.payment_status) == (S.SHIPPED, "captured")
    assert payments.captures == {order_id: 1}


def test_transient_errors_are_left_to_dramatiq(deps, engine, payments):
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    payments.fail_next("capture", transient("stripe", "capture_payment_intent"))
    with pytest.raises(Exception):  # noqa: B017
        capture_payment(deps, order_id)
    assert order(engine, order_id).capture_due
    assert capture_payment(deps, order_id) == SUCCESS
