"""The customer cancels, through the API, while the real steps run: before shipping the
order is cancelled and refunded once; a shipped or a stranger's order cannot be; a
charge that lands after the cancel is refunded."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.payments.compensation import (
    CHARGE_SETTLES_WITHIN,
    ChargeOutcomeUnknown,
    refund_payment,
)
from pipelines.payments.payment import settle_payment
from tests.support.fakes import PROCESSING_METHOD
from tests.support.steps import (
    DEADLINE,
    advance,
    api_order,
    cancel,
    mails,
    order,
    outbox,
    status,
    stock,
    transitions,
)
from tests.support.storefront import customer_token


@pytest.mark.parametrize("at", [S.PENDING, S.RESERVED, S.PAID, S.FULFILLING])
async def test_a_customer_cancels_before_shipping(client, deps, engine, payments, mailer, at):
    # Given a customer's order at `at`
    token = await customer_token(client)
    order_id, product = await api_order(client, engine, token)
    advance(deps, order_id, to=at)

    # When they cancel it
    response = await cancel(client, order_id, token)

    # Then it is cancelled, its stock is free and they will be told
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "cancelled"
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert "cancelled" in mails(engine, mailer, order_id, waiting=frozenset({"cancelled"}))
    # and a refund is queued whenever money may have been taken
    money_possible = at != S.PENDING
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == int(money_possible)

    # When the refund step runs (for a reserved order, once a charge that may have been
    # in flight at the cancel has had time to show in Stripe's search: before, it waits)
    refund_payment(replace(deps, now=lambda: datetime.now(UTC) + CHARGE_SETTLES_WITHIN), order_id)

    # Then whatever was paid is given back, once, and the order stays cancelled
    paid = at in (S.PAID, S.FULFILLING)
    assert len(payments.refunds) == int(paid)
    waiting = frozenset({"cancelled"})
    assert mails(engine, mailer, order_id, waiting=waiting).count("refunded") == int(paid)
    assert status(engine, order_id) == S.CANCELLED
    assert not order(engine, order_id).refund_due


async def test_cancelling_twice_answers_the_same_cancelled_order(client, deps, engine, mailer):
    # Given a paid and packed order
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)

    # When the customer cancels it twice
    first, second = await cancel(client, order_id, token), await cancel(client, order_id, token)

    # Then both answers are the same cancelled order, with one refund and one e-mail queued
    assert first.status == second.status == 200
    assert await first.json() == await second.json()
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1
    assert mails(engine, mailer, order_id, waiting=frozenset({"cancelled"})).count("cancelled") == 1
    assert transitions(engine, order_id, S.CANCELLED) == 1


async def test_a_shipped_order_cannot_be_cancelled(client, deps, engine, payments):
    # Given a shipped order
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.SHIPPED)

    # When the customer tries to cancel it
    response = await cancel(client, order_id, token)

    # Then it is refused and nothing changes
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "order_not_cancellable"
    assert status(engine, order_id) == S.SHIPPED
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 0


async def test_another_customers_order_cannot_be_cancelled_or_seen(client, deps, engine):
    # Given someone else's order
    owner, stranger = await customer_token(client), await customer_token(client)
    order_id, _ = await api_order(client, engine, owner)

    # When a stranger tries to cancel it
    response = await cancel(client, order_id, stranger)

    # Then it does not exist for them, and is still pending
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    assert status(engine, order_id) == S.PENDING


@pytest.mark.parametrize("refund_first", [True, False], ids=["refund-runs-first", "charge-first"])
async def test_a_payment_that_succeeds_after_the_customer_cancelled_is_refunded(
    client, deps, engine, payments, mailer, carrier, refund_first
):
    # Given a reserved order whose charge is on its way to Stripe
    token = await customer_token(client)
    order_id, product = await api_order(client, engine, token)
    advance(deps, order_id, to=S.RESERVED)
    in_flight, land = threading.Event(), threading.Event()

    def hold(_order_id: str) -> None:
        in_flight.set()
        assert land.wait(DEADLINE)

    payments.before["charge"] = hold
    charging = asyncio.create_task(
        asyncio.to_thread(run_steps, deps, m.REQUEST_PAYMENT, order_id=order_id)
    )
    assert await asyncio.to_thread(in_flight.wait, DEADLINE)

    # When the customer cancels while the charge is in flight
    assert (await cancel(client, order_id, token)).status == 200
    if refund_first:  # the refund step finds nothing paid yet, and concludes nothing
        with pytest.raises(ChargeOutcomeUnknown):
            refund_payment(deps, order_id)
        assert payments.refunds == {}
    # and then the charge succeeds
    land.set()
    await asyncio.wait_for(charging, DEADLINE)

    # Then the charge's commit queued the refund step again (the cancel queued it once)
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 2
    # and the money taken is refunded in full, once, and the order stays cancelled
    assert len(payments.money_taken) == 1
    assert order(engine, order_id).refund_due
    refund_payment(deps, order_id)
    refund_payment(deps, order_id)
    assert payments.refunds[order_id].amount == payments.money_taken[0].amount
    assert payments.calls["refund"] == 1
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert carrier.calls["ship"] == 0
    assert mails(engine, mailer, order_id, waiting=frozenset({"cancelled"})).count("refunded") == 1


async def test_a_payment_that_clears_while_the_refund_step_cancels_it_is_refunded(
    client, deps, engine, payments
):
    # Given an order waiting for a processing payment, which the customer cancels
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token, payment_method=PROCESSING_METHOD)
    advance(deps, order_id, to=S.PAYMENT_PENDING)
    assert (await cancel(client, order_id, token)).status == 200

    # When the payment clears at Stripe just as the refund step goes to cancel it, and
    # Stripe's payment_intent.succeeded webhook is handled in that moment
    def clears(payment_id: str) -> None:
        payments.complete(payment_id)
        settle_payment(deps, order_id)  # what process_webhook runs for the event

    payments.before["cancel_payment"] = clears
    refund_payment(deps, order_id)
    payments.before.clear()
    refund_payment(deps, order_id)  # and again, as a retry or the sweeper would

    # Then the money taken is given back
    assert len(payments.money_taken) == 1
    assert order_id in payments.refunds, "the customer cancelled, was charged, and kept no refund"
    assert status(engine, order_id) == S.CANCELLED
