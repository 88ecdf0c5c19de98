"""The authorization while it waits (``PAYMENT_CAPTURE=shipment``): a card that needs its
owner waits in ``requires_action``, and only the owner sees what it needs; an
authorization about to lapse, or lapsed, is never left unseen, whether the sweeper or
Stripe's webhook finds it. Stripe is the in-memory double (``tests.support.fakes``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Order
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.payment import expire_reservation, settle_payment
from tests.support.provider_webhooks import post_stripe, queued_event_id, stored_events
from tests.support.steps import (
    advance,
    api_order,
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
