"""Two writers on one order's money (issue 21, finding 8): a capture that meets a
compensation leaves no capture due after the void, and refunds what it took. Each test
asserts what Stripe (the in-memory double, whose search lags as Stripe's does) holds,
not only our rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.payments.capture import capture_payment
from pipelines.payments.compensation import refund_payment
from pipelines.shipping.tracking import apply_tracking
from tests.support.fakes import permanent
from tests.support.interleave import hold, in_thread
from tests.support.money import assert_stripe_keeps_nothing, deps_capturing, kinds_of_mail
from tests.support.steps import DEADLINE, given_order, order
from workers.sweeper import redrive_captures


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
