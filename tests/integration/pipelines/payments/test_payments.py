"""Payments as merchants run them (``PAYMENT_CAPTURE=shipment``, the default): the card
is authorized at order and captured once when the goods ship; a cancel before that voids
the authorization; a card that needs its owner waits in ``requires_action``; an
authorization about to lapse, or lapsed, is never left unseen; partial refunds never add
up to more than was captured. The steps run for real on PostgreSQL; Stripe is the
in-memory double (``tests.support.fakes``), whose keys behave as Stripe's; the sandbox
and the real gateway are in ``test_gateway_stripe_capture.py``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Order, Refund
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.compensation import refund_payment
from pipelines.payments.payment import expire_reservation, settle_payment
from pipelines.payments.refunds import process_refund
from tests.support.fakes import transient
from tests.support.provider_webhooks import post_stripe, queued_event_id, stored_events
from tests.support.steps import (
    DELIVERIES,
    advance,
    api_order,
    cancel,
    given_order,
    mails,
    make_deps,
    order,
    outbox,
    status,
    stock,
    transitions,
)
from tests.support.storefront import admin_token, bearer, customer_token
from workers.gauges import EXPIRING
from workers.sweeper import flag_expiring_authorizations


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


def test_a_card_that_needs_its_owner_waits_then_goes_on_when_authenticated(deps, engine, payments):
    # Given an order paid with a card that needs 3-D Secure
    order_id, _ = given_order(deps, engine, at=S.RESERVED,
                              payment_method="pm_card_authenticationRequired")  # fmt: skip

    # When its payment step runs
    run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id)

    # Then it waits for its owner, with what Stripe.js needs kept for them
    kept = order(engine, order_id)
    assert (kept.status, kept.payment_status) == (S.REQUIRES_ACTION, "requires_action")
    assert kept.payment_client_secret and kept.payment_next_action

    # When the customer authenticates and Stripe's webhook has the order settled
    payments.complete(kept.payment_intent_id, status="succeeded")  # held: requires_capture
    outcome = run_steps(deps, m.SETTLE_PAYMENT, order_id=order_id)

    # Then it is authorized, shipped and captured, and the secret is gone
    assert outcome == SUCCESS
    kept = order(engine, order_id)
    assert (kept.status, kept.payment_status) == (S.SHIPPED, "captured")
    assert kept.payment_client_secret is None and kept.payment_next_action is None


def test_a_failed_authentication_cancels_the_order_and_gives_the_stock_back(
    deps, engine, payments, mailer
):
    order_id, product = given_order(deps, engine, at=S.RESERVED,
                                    payment_method="pm_card_authenticationRequired")  # fmt: skip
    run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id)
    payments.complete(order(engine, order_id).payment_intent_id, status="requires_payment_method")

    assert run_steps(deps, m.SETTLE_PAYMENT, order_id=order_id) == FAILED

    kept = order(engine, order_id)
    assert (kept.status, kept.payment_status) == (S.CANCELLED, "failed")
    assert stock(engine, product) == (5, 0)
    assert "payment_failed" in mails(engine, mailer, order_id)


def test_an_abandoned_authentication_releases_the_stock_when_the_reservation_expires(
    deps, engine, payments, mailer
):
    # Given an order whose customer never authenticates
    order_id, product = given_order(deps, engine, at=S.RESERVED,
                                    payment_method="pm_card_authenticationRequired")  # fmt: skip
    run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id)
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id))
                        .values(reserved_until=datetime.now(UTC) - timedelta(seconds=1)))  # fmt: skip

    # When its reservation expires
    assert expire_reservation(deps, order_id) == FAILED

    # Then the PaymentIntent is cancelled, the stock is back and the customer told
    assert payments.intents[order(engine, order_id).payment_intent_id].status == "canceled"
    assert status(engine, order_id) == S.CANCELLED
    assert order(engine, order_id).payment_client_secret is None
    assert stock(engine, product) == (5, 0)
    assert "cancelled" in mails(engine, mailer, order_id)


def test_an_authorization_about_to_lapse_on_a_stalled_order_goes_to_an_operator(deps, engine):
    # Given an authorized order stuck before shipping, its authorization lapsing in a day
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    soon = datetime.now(UTC) + timedelta(days=1)
    with Session(engine) as session, session.begin():
        session.execute(update(Order).where(Order.id == uuid.UUID(order_id))
                        .values(capture_before=soon))  # fmt: skip
    with engine.connect() as conn:
        params = {"margin": 2 * 86400.0, "ended": ["delivered", "cancelled", "refunded"]}
        assert conn.scalar(EXPIRING, params) == 1  # the gauge sees it

    # When the scheduler looks (twice: the second finds it flagged already)
    flagged = [flag_expiring_authorizations(engine, margin=timedelta(days=2)) for _ in range(2)]

    # Then it is in needs_attention once, with the deadline in the reason
    assert flagged == [1, 0]
    kept = order(engine, order_id)
    assert kept.status == S.NEEDS_ATTENTION and kept.attention_from == S.FULFILLING
    assert "lapses at" in kept.last_error


def test_stripe_letting_an_authorization_lapse_is_never_silent(deps, engine, payments):
    # Given an authorized, packed order, and Stripe cancelling its authorization (expiry)
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    payments.complete(order(engine, order_id).payment_intent_id, status="canceled")

    # When the webhook's settle step runs
    assert settle_payment(deps, order_id) == FAILED

    # Then the order waits for an operator, with why
    kept = order(engine, order_id)
    assert kept.status == S.NEEDS_ATTENTION and "authorization" in kept.last_error


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


# --- refunds ------------------------------------------------------------------------------


async def captured_order(client, deps, engine) -> tuple[str, str]:
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)  # 2 x 12.50 = 2500
    advance(deps, order_id, to=S.SHIPPED)
    capture_payment(deps, order_id)
    return order_id, token


async def refund(client, admin: str, order_id: str, body: dict, *, key: str | None = None):
    headers = {**bearer(admin), "Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post(f"/v1/admin/orders/{order_id}/refunds", json=body, headers=headers)


async def test_partial_refunds_by_line_and_amount_never_exceed_the_capture(
    client, deps, engine, payments, mailer
):
    # Given a captured order of 2 x 12.50, and an operator
    order_id, token = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)
    with Session(engine) as session:
        product_id = str(session.scalar(text("SELECT product_id FROM order_lines "
                                             "WHERE order_id = :o"), {"o": order_id}))  # fmt: skip

    # When one unit is refunded by line, and 5.00 by amount
    by_line = await refund(client, admin, order_id, {"lines": [{"product_id": product_id,
                                                                "quantity": 1}]})  # fmt: skip
    by_amount = await refund(client, admin, order_id, {"amount": "5.00", "reason": "scratched"})
    assert (by_line.status, by_amount.status) == (201, 201), await by_line.text()
    assert (await by_line.json())["amount"] == "12.50"

    # Then asking for more than remains (7.50) is refused and changes nothing
    too_much = await refund(client, admin, order_id, {"amount": "7.51"})
    assert too_much.status == 409
    assert (await too_much.json())["error"]["code"] == "refund_exceeds_captured"
    again = await refund(client, admin, order_id, {"lines": [{"product_id": product_id,
                                                              "quantity": 2}]})  # fmt: skip
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "refund_exceeds_quantity"

    # When the refund messages run (each twice)
    with Session(engine) as session:
        ids = [str(i) for i in session.scalars(select(Refund.id).where(
            Refund.order_id == uuid.UUID(order_id)))]  # fmt: skip
    assert outbox(engine, m.PROCESS_REFUND) == 2
    for refund_id in ids * 2:
        process_refund(deps, refund_id)

    # Then Stripe refunded each once, the order shows them, and each was e-mailed
    assert sorted(r.amount for r in payments.refund_keys.values()) == [500, 1250]
    kept = order(engine, order_id)
    assert (kept.amount_refunded, kept.payment_status) == (1750, "partially_refunded")
    response = await client.get(f"/v1/orders/{order_id}", headers=bearer(token))
    payment = (await response.json())["payment"]
    assert payment["refunded_amount"] == 1750 and len(payment["refunds"]) == 2
    assert {r["status"] for r in payment["refunds"]} == {"succeeded"}
    assert mailer.kinds(order_id=order_id).count("refunded") == 2


async def test_concurrent_refunds_that_together_exceed_the_capture_accept_one(
    client, deps, engine, payments
):
    # Given a captured order of 25.00
    order_id, _ = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)

    # When two operators refund 15.00 at the same moment
    answers = await asyncio.gather(*(refund(client, admin, order_id, {"amount": "15.00"})
                                     for _ in range(2)))  # fmt: skip

    # Then one is accepted and the other refused, and only one is ever refunded
    assert sorted(a.status for a in answers) == [201, 409]
    with Session(engine) as session:
        ids = [str(i) for i in session.scalars(select(Refund.id))]
    assert len(ids) == 1
    process_refund(deps, ids[0])
    assert [r.amount for r in payments.refund_keys.values()] == [1500]
    assert order(engine, order_id).amount_refunded == 1500


async def test_a_refund_retried_with_its_key_answers_the_first_and_refunds_once(
    client, deps, engine, payments
):
    order_id, _ = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)

    first = await refund(client, admin, order_id, {"amount": "10.00"}, key="refund-1")
    second = await refund(client, admin, order_id, {"amount": "10.00"}, key="refund-1")
    other = await refund(client, admin, order_id, {"amount": "9.00"}, key="refund-1")

    assert (first.status, second.status, other.status) == (201, 201, 422)
    assert (await first.json())["id"] == (await second.json())["id"]
    assert order(engine, order_id).amount_refunded == 1000
    missing = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                                headers=bearer(admin))  # fmt: skip
    assert missing.status == 400


async def test_nothing_captured_means_nothing_to_refund(client, deps, engine):
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)  # authorized, not captured
    admin = await admin_token(client, engine)

    response = await refund(client, admin, order_id, {"amount": "1.00"})

    assert response.status == 409
    assert (await response.json())["error"]["code"] == "nothing_captured"


async def test_a_refund_stripe_refuses_gives_the_amount_back(client, deps, engine, payments):
    order_id, _ = await captured_order(client, deps, engine)
    admin = await admin_token(client, engine)
    response = await refund(client, admin, order_id, {"amount": "10.00"})
    refund_id = (await response.json())["id"]
    from tests.support.fakes import permanent

    payments.fail_next("refund", permanent("stripe", "create_refund", "charge_disputed"))

    assert process_refund(deps, refund_id) == FAILED

    kept = order(engine, order_id)
    assert kept.amount_refunded == 0 and kept.payment_status == "captured"
    with Session(engine) as session:
        assert session.get(Refund, uuid.UUID(refund_id)).status == "failed"


async def test_only_the_owner_sees_what_authentication_needs(client, deps, engine):
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token,
                                  payment_method="pm_card_authenticationRequired")  # fmt: skip
    advance(deps, order_id, to=S.RESERVED)
    run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id)
    admin = await admin_token(client, engine)

    mine = await (await client.get(f"/v1/orders/{order_id}", headers=bearer(token))).json()
    theirs = await (await client.get(f"/v1/orders/{order_id}", headers=bearer(admin))).json()

    assert mine["status"] == "requires_action"
    assert mine["payment"]["client_secret"] and mine["payment"]["next_action"]
    assert theirs["payment"]["client_secret"] is None and theirs["payment"]["next_action"] is None


def test_transient_errors_are_left_to_dramatiq(deps, engine, payments):
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    payments.fail_next("capture", transient("stripe", "capture_payment_intent"))
    with pytest.raises(Exception):  # noqa: B017
        capture_payment(deps, order_id)
    assert order(engine, order_id).capture_due
    assert capture_payment(deps, order_id) == SUCCESS


# --- through the webhook intake ---------------------------------------------------------


async def test_a_lapse_webhook_for_an_order_holding_its_authorization_reaches_an_operator(
    client, deps, engine, payments, settings
):
    # Given an authorized, packed order, and Stripe letting its authorization lapse
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    (intent,) = payments.payments_for(order_id)
    payments.complete(intent.id, status="canceled")

    # When Stripe's charge.expired arrives, and the worker processes it (twice)
    await post_stripe(client, settings, "charge.expired", order_id=order_id, intent_id=intent.id)
    event_id = queued_event_id(engine)
    outcomes = [run_steps(deps, m.PROCESS_WEBHOOK, event_id=event_id) for _ in range(2)]

    # Then the order is in needs_attention, once, never silently left to ship unpaid
    assert outcomes[1] == SKIPPED
    assert status(engine, order_id) == S.NEEDS_ATTENTION
    assert transitions(engine, order_id, S.NEEDS_ATTENTION) == 1


async def test_a_lapse_webhook_for_a_captured_order_costs_nothing(
    client, deps, engine, payments, settings
):
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    capture_payment(deps, order_id)
    (intent,) = payments.payments_for(order_id)

    await post_stripe(client, settings, "payment_intent.canceled", order_id=order_id,
                      intent_id=intent.id)  # fmt: skip

    (event,) = stored_events(engine, "stripe")
    assert event.processed_at is not None and outbox(engine, m.PROCESS_WEBHOOK) == 0
    assert status(engine, order_id) == S.SHIPPED


async def test_the_webhook_after_3d_secure_moves_the_order_on(
    client, deps, engine, payments, settings
):
    # Given an order waiting for its customer to authenticate
    order_id, _ = given_order(deps, engine, at=S.RESERVED,
                              payment_method="pm_card_authenticationRequired")  # fmt: skip
    run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id)
    (intent,) = payments.payments_for(order_id)
    assert status(engine, order_id) == S.REQUIRES_ACTION

    # When they do, and Stripe's amount_capturable_updated arrives and is processed
    payments.complete(intent.id, status="succeeded")  # manual: held, requires_capture
    await post_stripe(client, settings, "payment_intent.amount_capturable_updated",
                      order_id=order_id, intent_id=intent.id)  # fmt: skip
    run_steps(deps, m.PROCESS_WEBHOOK, event_id=queued_event_id(engine))

    # Then it is authorized, shipped and captured in that one message
    kept = order(engine, order_id)
    assert (kept.status, kept.payment_status) == (S.SHIPPED, "captured")
    assert payments.captures == {order_id: 1}
