"""Two writers on one order's money (issue 21): a cancel while the charge is in flight,
a refund Stripe refuses, an operator's key spelled like the saga's own, a capture that
meets a compensation. Each test asserts what Stripe (the in-memory double, whose search
lags as Stripe's does) holds, not only our rows."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Notification, Refund
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.compensation import refund_payment
from pipelines.payments.refunds import process_refund
from pipelines.shipping.ship import apply_tracking
from tests.support.fakes import permanent
from tests.support.interleave import hold, in_thread
from tests.support.steps import (
    DEADLINE,
    advance,
    api_order,
    cancel,
    given_order,
    make_deps,
    order,
    outbox,
    status,
)
from tests.support.storefront import admin_token, bearer, customer_token
from workers.sweeper import redrive_captures, redrive_refunds


def deps_capturing(engine, settings, payments, mailer, carrier, *, at: str):
    """Steps that capture at ``order`` (a charge) or at ``shipment`` (an authorization)."""
    policy = settings.model_copy(update={"payment_capture": at})
    return make_deps(engine, policy, payments, mailer, carrier)


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    return deps_capturing(engine, settings, payments, mailer, carrier, at="order")


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


# --- finding 2: a cancel while the charge is in flight ------------------------------------


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
    from pipelines.payments.compensation import CHARGE_SETTLES_WITHIN, ChargeOutcomeUnknown

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
    from dramatiq import Retry
    from dramatiq.brokers.stub import StubBroker

    from pipelines.actors import register_actors

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


# --- finding 3: a refund Stripe refuses ---------------------------------------------------


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


# --- finding 7: an operator's key spelled like an internal one ----------------------------


async def test_an_operator_key_spelled_compensation_never_stands_for_the_compensation(
    client, deps, engine, payments
):
    # Given a paid order an operator refunded 1.00 of, with the key "compensation"
    token = await customer_token(client)
    order_id, _ = await api_order(client, engine, token)
    advance(deps, order_id, to=S.FULFILLING)
    admin = await admin_token(client, engine)
    made = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                             headers={**bearer(admin), "Idempotency-Key": "compensation"})  # fmt: skip
    assert made.status == 201, await made.text()
    assert process_refund(deps, (await made.json())["id"]) == SUCCESS

    # When the customer cancels and the compensation refunds the rest
    assert (await cancel(client, order_id, token)).status == 200
    assert refund_payment(deps, order_id) == SUCCESS

    # Then Stripe gave everything back: the operator's 1.00 and the compensation's rest
    (charge,) = payments.money_taken
    assert given_back(payments, charge.id) == charge.amount_received
    kept = order(engine, order_id)
    assert kept.amount_refunded == kept.amount_captured
    assert sorted(refund_rows(engine, order_id)) == [
        ("compensation", "compensation", "succeeded"),
        ("operator", "compensation", "succeeded"),
    ]


async def test_an_operator_key_spelled_like_a_returns_refund_never_skips_that_refund(
    client, engine, settings, payments, mailer, carrier
):
    from tests.integration.api.returns.test_returns import ask_return, delivered_order, receive

    deps = deps_capturing(engine, settings, payments, mailer, carrier, at="shipment")
    # Given a delivered order with a return requested, and an operator's goodwill refund
    # of 1.00 whose key happens to be spelled as the return's own refund key
    order_id, token, mug, _ = await delivered_order(client, deps, engine)
    asked = await ask_return(client, token, order_id, (mug, 1))
    return_id = (await asked.json())["id"]
    admin = await admin_token(client, engine)
    made = await client.post(f"/v1/admin/orders/{order_id}/refunds", json={"amount": "1.00"},
                             headers={**bearer(admin), "Idempotency-Key": f"return_{return_id}"})  # fmt: skip
    assert made.status == 201, await made.text()
    assert process_refund(deps, (await made.json())["id"]) == SUCCESS

    # When the warehouse receives the mug
    received = await receive(client, admin, return_id, (mug, 1, "restock"))

    # Then the receipt is answered, and its refund is made at Stripe beside the operator's
    assert received.status == 200, await received.text()
    assert process_refund(deps, (await received.json())["refund_id"]) == SUCCESS
    (charge,) = payments.money_taken
    assert given_back(payments, charge.id) == 100 + 1250
    assert order(engine, order_id).amount_refunded == 100 + 1250


# --- finding 8: capture_due outliving a void ----------------------------------------------


@pytest.fixture
def at_shipment(engine, settings, payments, mailer, carrier):
    return deps_capturing(engine, settings, payments, mailer, carrier, at="shipment")


def test_a_compensation_leaves_no_capture_for_the_sweeper_to_resend(at_shipment, engine, payments):
    deps = at_shipment
    # Given a shipped order whose capture is due, and a parcel that will not arrive
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)
    assert order(engine, order_id).capture_due
    assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED

    # When the compensation voids the authorization
    assert refund_payment(deps, order_id) == SUCCESS

    # Then no capture is due any more: the sweeper sends none, Stripe captured nothing
    assert not order(engine, order_id).capture_due
    assert redrive_captures(engine, stall=timedelta(0)) == 0
    assert capture_payment(deps, order_id) == SKIPPED
    assert payments.captures == {}
    assert_stripe_keeps_nothing(payments, order_id)


def test_a_capture_held_before_its_commit_while_the_parcel_is_compensated_is_refunded(
    at_shipment, engine, payments
):
    deps = at_shipment
    # Given a shipped order whose capture Stripe has just made, held before its commit
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)
    with hold("capture_payment.before_commit") as point:
        capturing = in_thread(lambda: capture_payment(deps, order_id))
        point.wait_reached()

        # When the parcel's compensation commits meanwhile, and then the capture
        assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED
        point.release()
        assert capturing.result(DEADLINE) == SKIPPED

    # Then the refund step refunds what Stripe captured, once; no capture is left due
    assert refund_payment(deps, order_id) == SUCCESS
    assert payments.captures == {order_id: 1}
    assert_stripe_keeps_nothing(payments, order_id)
    kept = order(engine, order_id)
    assert (kept.status, kept.capture_due, kept.refund_due) == (S.REFUNDED, False, False)


def test_a_capture_failing_while_the_parcel_is_compensated_sends_no_could_not_ship_mail(
    at_shipment, engine, payments
):
    deps = at_shipment
    # Given a shipped order whose capture is due
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)

    # When the parcel's compensation begins while the capture is in flight, and the
    # capture fails for good
    def compensation_begins(_order_id: str) -> None:
        assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED

    payments.before["capture"] = compensation_begins
    payments.fail_next("capture", permanent("stripe", "capture_payment_intent", "expired"))
    capture_payment(deps, order_id)
    payments.before.clear()
    assert refund_payment(deps, order_id) == SUCCESS

    # Then the goods that shipped are refunded (voided), never "could not ship"
    kept = order(engine, order_id)
    assert (kept.status, kept.capture_due, kept.refund_due) == (S.REFUNDED, False, False)
    assert "cancelled" not in kinds_of_mail(engine, order_id)
    assert payments.captures == {}
    assert_stripe_keeps_nothing(payments, order_id)
