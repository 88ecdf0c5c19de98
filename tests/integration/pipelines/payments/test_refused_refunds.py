"""Two writers on one order's money (issue 21, finding 3): a refund Stripe refuses
reaches an operator and is retried, and is never given back twice nor lost. Each test
asserts what Stripe (the in-memory double, whose search lags as Stripe's does) holds,
not only our rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.compensation import refund_payment
from pipelines.payments.refunds import process_refund
from tests.support.fakes import permanent
from tests.support.interleave import hold, in_thread
from tests.support.money import deps_capturing, given_back, kinds_of_mail, refund_rows
from tests.support.steps import DEADLINE, advance, api_order, cancel, order, outbox, status
from tests.support.storefront import admin_token, bearer, customer_token
from workers.sweeper import redrive_refunds


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return deps_capturing(engine, settings, payments, mailer, carrier, at="order")


async def test_a_compensation_refund_stripe_refuses_reaches_an_operator_and_is_retried(
    client, deps, engine, payments, mailer
):
    # Given a paid order the customer cancels
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    assert (await cancel(client, order_id, token)).status == 200

    # When Stripe refuses the compensation's refund
    payments.fail_next("refund", permanent("stripe", "create_refund", "charge_disputed"))
    assert refund_payment(deps, order_id) == FAILED

    # Then nothing says "refunded": the order waits for an operator with the error, the
    # refund still due, and the sweeper's redrive does not try again on its own
    kept = order(engine, order_id)
    assert (kept.status, kept.attention_from, kept.refund_due) == (
        S.NEEDS_ATTENTION, S.CANCELLED, True)  # fmt: skip
    assert "charge_disputed" in kept.last_error
    assert payments.refunds == {} and "refunded" not in kinds_of_mail(engine, order_id)
    assert redrive_refunds(engine, stall=timedelta(0)) == 0
    assert refund_payment(deps, order_id) == SKIPPED and payments.refunds == {}

    # When an operator resumes the order
    admin = await admin_token(client, engine)
    resumed = await client.post(f"/v1/admin/orders/{order_id}/resume", headers=bearer(admin))
    assert resumed.status == 200, await resumed.text()
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) >= 2
    assert refund_payment(deps, order_id) == SUCCESS

    # Then Stripe refunded the charge once, under a new refund and key
    (charge,) = payments.money_taken
    assert given_back(payments, charge.id) == charge.amount_received
    assert refund_rows(engine, order_id) == [
        ("compensation", "compensation", "failed"),
        ("compensation", "compensation_2", "succeeded"),
    ]
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due, kept.payment_status) == (
        S.CANCELLED, False, "refunded")  # fmt: skip
    assert kinds_of_mail(engine, order_id).count("refunded") == 1


async def test_another_run_of_the_refund_step_after_a_refusal_refunds_nothing_on_its_own(
    client, deps, engine, payments
):
    # Given a paid order the customer cancels, whose refund Stripe refuses
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    assert (await cancel(client, order_id, token)).status == 200
    payments.fail_next("refund", permanent("stripe", "create_refund", "charge_disputed"))

    # When another run of the step (a duplicate message, the sweeper's copy) comes while
    # the refused one is held before its last commit
    with hold("refund_payment.before_settle") as point:
        refused = in_thread(lambda: refund_payment(deps, order_id))
        await asyncio.to_thread(point.wait_reached)
        other = await asyncio.to_thread(refund_payment, deps, order_id)
        point.release()
        assert refused.result(DEADLINE) == FAILED

    # Then it made no refund of its own: one refused attempt, waiting for an operator
    assert other == SKIPPED
    assert payments.calls["refund"] == 1 and payments.refunds == {}
    assert refund_rows(engine, order_id) == [("compensation", "compensation", "failed")]
    assert status(engine, order_id) == S.NEEDS_ATTENTION


@pytest.mark.parametrize("refused", ["before-the-compensation-ends", "after-it-ended"])
async def test_an_operators_refund_refused_while_the_compensation_ran_is_given_back_by_it(
    client, deps, engine, payments, refused
):
    # Given a paid order with an operator's refund of 1.00 accepted (not yet made), and
    # the customer's cancel, whose compensation refunds what remains refundable
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    admin = await admin_token(client, engine)
    made = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                             headers={**bearer(admin), "Idempotency-Key": "goodwill"})  # fmt: skip
    assert made.status == 201, await made.text()
    operator_refund = (await made.json())["id"]
    assert (await cancel(client, order_id, token)).status == 200

    # When Stripe refuses the operator's refund, while the compensation is about to
    # commit or after it has
    refusal = permanent("stripe", "create_refund", "charge_disputed")
    if refused == "before-the-compensation-ends":
        with hold("refund_payment.before_settle") as point:
            compensating = in_thread(lambda: refund_payment(deps, order_id))
            await asyncio.to_thread(point.wait_reached)
            payments.fail_next("refund", refusal)
            assert process_refund(deps, operator_refund) == FAILED
            point.release()
            assert compensating.result(DEADLINE) == SUCCESS
    else:
        assert refund_payment(deps, order_id) == SUCCESS
        payments.fail_next("refund", refusal)
        assert process_refund(deps, operator_refund) == FAILED
        assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 2
        assert refund_payment(deps, order_id) == SUCCESS

    # Then Stripe gave everything back: the cancelled order keeps nothing
    (charge,) = payments.money_taken
    assert given_back(payments, charge.id) == charge.amount_received
    kept = order(engine, order_id)
    assert (kept.status, kept.refund_due) == (S.CANCELLED, False)
    assert kept.amount_refunded == kept.amount_captured
