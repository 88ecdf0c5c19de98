"""The refund step (``refund_payment``) gives the money back once, however often its
message runs."""

from __future__ import annotations

from fulfillment.states import OrderStatus as S
from pipelines.common import FAILED, SUCCESS
from pipelines.payments.compensation import refund_payment
from pipelines.shipping.tracking import apply_tracking
from tests.support.steps import DELIVERIES, given_order, mails, order, status, transitions


@DELIVERIES
def test_refund_payment_refunds_once(deps, engine, payments, mailer, run):
    # Given an order in transit that the carrier sends back
    order_id, _ = given_order(deps, engine, at=S.IN_TRANSIT)
    assert apply_tracking(deps, order_id, status="return_to_sender") == FAILED

    # When its refund message is delivered more than once
    outcomes = run(lambda: refund_payment(deps, order_id))

    # Then the money is given back once and the order is refunded once
    assert outcomes.count(SUCCESS) == 1
    assert list(payments.refunds) == [order_id]
    assert payments.refunds[order_id].amount == order(engine, order_id).total_amount
    assert status(engine, order_id) == S.REFUNDED
    assert transitions(engine, order_id, S.REFUNDED) == 1
    assert mails(engine, mailer, order_id).count("refunded") == 1
