"""Tracking (``apply_tracking``, ``refresh_tracking``): delivered once, never moved
backwards, a parcel that will not arrive refunded once, a forgotten tracker noted."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.compensation import refund_payment
from pipelines.shipping.tracking import apply_tracking, refresh_tracking
from tests.support.shipments import the_shipment
from tests.support.steps import (
    DELIVERIES,
    given_order,
    mails,
    order,
    outbox,
    status,
    transitions,
    twice,
)


def test_a_tracker_the_carrier_no_longer_knows_is_noted_not_retried(deps, engine, carrier):
    # Given a shipped order whose tracker the carrier has forgotten
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    carrier.trackers.clear()

    # When the sweeper polls it, the step records the refusal instead of raising
    assert refresh_tracking(deps, order_id) == FAILED

    # Then the order stays shipped, and the timeline says why
    assert status(engine, order_id) == S.SHIPPED


@DELIVERIES
def test_apply_tracking_delivers_once(deps, engine, mailer, run):
    # Given a shipped order
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)

    # When the carrier's "delivered" reaches it more than once
    outcomes = run(lambda: apply_tracking(deps, order_id, status="delivered"))

    # Then it is delivered once and the customer hears about it once
    assert outcomes.count(SUCCESS) == 1
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.DELIVERED) == 1
    assert mails(engine, mailer, order_id) == ["order_confirmed", "shipped", "delivered"]


def test_tracking_never_moves_an_order_backwards(deps, engine, payments, mailer):
    # Given a delivered order
    order_id, _ = given_order(deps, engine, at=S.DELIVERED)

    # When late and out-of-order tracker statuses arrive
    late = [apply_tracking(deps, order_id, status=s)
            for s in ("in_transit", "out_for_delivery", "pre_transit", "return_to_sender")]  # fmt: skip

    # Then it stays delivered, with nothing refunded and no second e-mail
    assert late == [SKIPPED] * 4
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.IN_TRANSIT) == 1  # the one before delivery
    assert not order(engine, order_id).refund_due and payments.refunds == {}
    assert mails(engine, mailer, order_id).count("delivered") == 1


def test_a_late_tracker_status_does_not_rewind_the_shipment_record(deps, engine):
    # Given a delivered order
    order_id, _ = given_order(deps, engine, at=S.DELIVERED)

    # When a late "in_transit" arrives
    apply_tracking(deps, order_id, status="in_transit")

    # Then the shipment still shows what the customer saw last: delivered
    with Session(engine) as session:
        assert the_shipment(session, uuid.UUID(order_id)).tracker_status == "delivered"


@pytest.mark.parametrize("tracker", ["return_to_sender", "failure"])
def test_a_parcel_that_will_not_arrive_is_refunded_once(deps, engine, payments, mailer, tracker):
    # Given an order in transit
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)

    # When the carrier reports it will not arrive, twice
    outcomes = twice(lambda: apply_tracking(deps, order_id, status=tracker))

    # Then a refund is due and queued once
    assert outcomes == [FAILED, SKIPPED]
    assert order(engine, order_id).refund_due
    assert outbox(engine, m.REFUND_PAYMENT, order_id=order_id) == 1

    # When the refund step runs (and runs again)
    assert twice(lambda: refund_payment(deps, order_id)) == [SUCCESS, SKIPPED]

    # Then the customer got their money back once and the order is refunded
    assert payments.calls["refund"] == 1
    assert payments.refunds[order_id].amount == order(engine, order_id).total_amount
    assert status(engine, order_id) == S.REFUNDED
    assert not order(engine, order_id).refund_due
    assert mails(engine, mailer, order_id).count("refunded") == 1
