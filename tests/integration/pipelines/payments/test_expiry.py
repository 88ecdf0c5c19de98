"""Reservation expiry (``expire_reservation``): an unpaid reservation past its deadline
is cancelled and its stock released; one whose payment came in meanwhile is settled
as paid."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.deps import Deps
from pipelines.payments.payment import expire_reservation
from tests.support.fakes import PROCESSING_METHOD
from tests.support.steps import (
    given_order,
    mails,
    notification_of,
    outbox,
    status,
    stock,
    transitions,
    twice,
)


def after_the_deadline(deps: Deps) -> Deps:
    ttl = timedelta(seconds=deps.settings.reservation_ttl_seconds + 60)
    return replace(deps, now=lambda: datetime.now(UTC) + ttl)


def test_an_unpaid_reservation_past_its_deadline_is_cancelled_and_released(
    deps, engine, payments, mailer, carrier
):
    # Given an order waiting for a payment that is still processing
    order_id, product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )

    # When expiry runs before the deadline
    assert expire_reservation(deps, order_id) == SKIPPED
    # Then nothing happens
    assert status(engine, order_id) == S.PAYMENT_PENDING and stock(engine, product) == (5, 2)

    # When expiry runs after the deadline (and again)
    later = after_the_deadline(deps)
    assert twice(lambda: run_steps(later, m.EXPIRE_RESERVATION, order_id=order_id)) == [
        FAILED, SKIPPED]  # fmt: skip

    # Then the payment is cancelled at Stripe, the stock released, the order cancelled
    assert [p.status for p in payments.payments_for(order_id)] == ["canceled"]
    assert status(engine, order_id) == S.CANCELLED
    assert stock(engine, product) == (5, 0)
    assert notification_of(engine, order_id, "cancelled").data == {"reason": "reservation_expired"}
    assert mails(engine, mailer, order_id) == ["cancelled"]
    assert carrier.calls["ship"] == 0


def test_a_reservation_whose_payment_came_in_meanwhile_is_settled_as_paid(
    deps, engine, payments, carrier
):
    # Given an order waiting for a processing payment, which has now succeeded
    order_id, product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )
    (intent,) = payments.payments_for(order_id)
    payments.complete(intent.id)

    # When expiry runs after the deadline (its step alone, then its whole message)
    later = after_the_deadline(deps)
    assert expire_reservation(later, order_id) == SUCCESS

    # Then the order is paid and packed, keeps its stock, and nothing is queued
    assert status(engine, order_id) == S.FULFILLING
    assert transitions(engine, order_id, S.PAID) == 1
    assert stock(engine, product) == (5, 2)
    assert outbox(engine, m.FULFIL_ORDER, order_id=order_id) == 0
    assert outbox(engine, m.SHIP_ORDER, order_id=order_id) == 0
    assert payments.refunds == {}
    assert [p.status for p in payments.payments_for(order_id)] == ["succeeded"]

    # When the expiry message runs (its chain ends with the label)
    other_id, other_product = given_order(
        deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD
    )
    payments.complete(payments.payments_for(other_id)[0].id)
    assert run_steps(later, m.EXPIRE_RESERVATION, order_id=other_id) == SUCCESS

    # Then that order is paid and shipped in one go, its stock gone with the parcel
    assert status(engine, other_id) == S.SHIPPED
    assert stock(engine, other_product) == (3, 0)
    assert carrier.labels_bought == 1 and carrier.lookups == [False]
    assert payments.refunds == {}
