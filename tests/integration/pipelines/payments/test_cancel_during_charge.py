"""Two writers on one order's money (issue 21, finding 2): a cancel while the charge is
in flight never keeps the money, whichever commits first or dies before its commit. Each
test asserts what Stripe (the in-memory double, whose search lags as Stripe's does)
holds, not only our rows."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from dramatiq import Retry
from dramatiq.brokers.stub import StubBroker

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from pipelines.actors import register_actors, run_steps
from pipelines.common import SUCCESS
from pipelines.payments.compensation import (
    CHARGE_SETTLES_WITHIN,
    ChargeOutcomeUnknown,
    refund_payment,
)
from tests.support.interleave import hold, in_thread
from tests.support.money import assert_stripe_keeps_nothing, deps_capturing
from tests.support.steps import DEADLINE, advance, api_order, cancel, order
from tests.support.storefront import customer_token


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return deps_capturing(engine, settings, payments, mailer, carrier, at="order")


@pytest.mark.parametrize("capture", ["order", "shipment"])
async def test_a_cancel_while_the_charge_is_in_flight_never_keeps_the_money(
    client, engine, settings, payments, mailer, carrier, capture
):
    deps = deps_capturing(engine, settings, payments, mailer, carrier, at=capture)
    # Given a reserved order whose charge is on its way to Stripe
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.RESERVED)
    in_flight, land = threading.Event(), threading.Event()

    def held(_order_id: str) -> None:
        in_flight.set()
        assert land.wait(DEADLINE)

    payments.before["charge"] = held
    charging = in_thread(lambda: run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id))
    assert await asyncio.to_thread(in_flight.wait, DEADLINE)

    # When the customer cancels, and the refund step - having read the order before the
    # charge settled - asks Stripe's search just after the charge landed and committed
    assert (await cancel(client, order_id, token)).status == 200

    def the_charge_lands(_order_id: str) -> None:
        land.set()
        charging.result(DEADLINE)

    payments.before["find_payment"] = the_charge_lands
    assert await asyncio.to_thread(refund_payment, deps, order_id) == SUCCESS

    # Then Stripe keeps nothing: the charge is refunded, or the authorization voided
    assert_stripe_keeps_nothing(payments, order_id)
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due) == (S.CANCELLED, False)


async def test_a_charge_that_settles_while_the_refund_step_is_about_to_commit_is_given_back(
    client, deps, engine, payments
):
    # Given a reserved order whose charge is on its way to Stripe, and the customer cancels
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.RESERVED)
    in_flight, land = threading.Event(), threading.Event()

    def held(_order_id: str) -> None:
        in_flight.set()
        assert land.wait(DEADLINE)

    payments.before["charge"] = held
    charging = in_thread(lambda: run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id))
    assert await asyncio.to_thread(in_flight.wait, DEADLINE)
    assert (await cancel(client, order_id, token)).status == 200

    # When the refund step has read the order and found nothing at Stripe (no charge
    # exists yet: no search lag needed) and is held before its commit, while the charge
    # lands and its step commits
    with hold("refund_payment.before_settle") as point:
        refunding = in_thread(lambda: refund_payment(deps, order_id))
        await asyncio.to_thread(point.wait_reached)
        land.set()
        charging.result(DEADLINE)
        point.release()
        assert refunding.result(DEADLINE) == SUCCESS

    # Then Stripe keeps nothing, and the order is cancelled with nothing left due
    assert_stripe_keeps_nothing(payments, order_id)
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due) == (S.CANCELLED, False)


async def test_a_charge_whose_step_died_before_its_commit_is_given_back_after_a_cancel(
    client, deps, engine, payments
):
    # Given a reserved order whose charge Stripe made while the worker died before its
    # commit (the order knows no PaymentIntent), and the customer cancels
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.RESERVED)
    kept = order(engine, order_id)
    payments.charge(order_id=order_id, amount=kept.total_amount, currency=kept.currency,
                    payment_method=kept.payment_method)  # fmt: skip
    assert (await cancel(client, order_id, token)).status == 200

    # When the refund step runs before Stripe's search shows the charge
    with pytest.raises(ChargeOutcomeUnknown):
        refund_payment(deps, order_id)
    assert order(engine, order_id).refund_due  # it concluded nothing

    # and is retried once the search has caught up
    payments.catch_up()
    later = replace(deps, now=lambda: datetime.now(UTC) + CHARGE_SETTLES_WITHIN)
    assert refund_payment(later, order_id) == SUCCESS

    # Then the charge is refunded in full
    assert_stripe_keeps_nothing(payments, order_id)
    assert not order(engine, order_id).refund_due


async def test_a_refund_step_that_cannot_know_yet_is_retried_quietly_when_search_would_tell(
    client, deps, engine
):
    # Given a reserved order the customer cancels before any charge shows at Stripe
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.RESERVED)
    assert (await cancel(client, order_id, token)).status == 200

    # When the refund message runs
    actor = register_actors(StubBroker(), deps)[m.REFUND_PAYMENT[0]]
    with pytest.raises(Retry) as raised:
        await asyncio.to_thread(actor.fn, order_id=order_id)

    # Then it is retried (Dramatiq's quiet retry, not an error) once Stripe's search
    # would show a charge that landed after the cancel, and nothing is concluded now
    assert 100_000 < raised.value.delay <= 120_000
    assert order(engine, order_id).refund_due
