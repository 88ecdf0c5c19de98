"""A worker SIGKILLed while captures are in flight (``PAYMENT_CAPTURE=shipment``): the
capture Stripe already made is read back when the message comes again (same key), never
made a second time, and never "repaired" by a refund. Stripe's own records are the
judge."""

from __future__ import annotations

import asyncio
import signal

import pytest
import stripe
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import Order
from tests.support.chaos import backward_moves, place, verify_clean
from tests.support.storefront import add_product
from tests.support.system import wait_until

VISA = "pm_card_visa"


def captures_in_flight(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Order).where(Order.capture_due))


@pytest.mark.slow
def test_a_worker_killed_mid_capture_captures_each_order_once(system, db):
    # Given Stripe answering captures slowly (``/v1/payment_intents/{id}/capture``; the
    # charge itself, ``POST /v1/payment_intents``, is not slowed), so that a capture
    # is in flight for seconds: the kill cannot miss it
    product = add_product(db, on_hand=100)
    system.faults(stripe={"latency": 3.0, "paths": ["POST /v1/payment_intents/"]})
    load = asyncio.run(place([system.api_url], product, [VISA] * 8, per_second=12))
    assert len(load.accepted) == 8

    # When the workers are SIGKILLed while at least one capture is in flight
    wait_until(lambda: captures_in_flight(db) > 0, timeout=90, what="a capture in flight",
               on_fail=system.order_statuses)  # fmt: skip
    system.stop("worker", sig=signal.SIGKILL)
    in_flight = captures_in_flight(db)
    system.start("worker")
    system.clear_faults()

    # Then every order is delivered, captured once, for what was authorized
    assert in_flight > 0
    assert system.wait_all_terminal(expected=8, timeout=180) == {"delivered": 8}
    # (a parcel outruns its capture: the carrier's clock is fast here, and a capture the
    # kill cut is sent again by its retry or the sweeper, after the order was delivered)
    wait_until(lambda: captures_in_flight(db) == 0, timeout=90, what="every capture settled",
               on_fail=system.logs)  # fmt: skip
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": system.sandbox_url})
    held = [i.to_dict() for i in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter()]
    assert len(held) == 8  # one PaymentIntent per order
    uncaptured = [(i["id"], i["status"], i["amount"], i["amount_received"]) for i in held
                  if i["status"] != "succeeded" or i["amount_received"] != i["amount"]]  # fmt: skip
    assert not uncaptured, f"{uncaptured}\n{system.logs()}"
    refunds = list(client.v1.refunds.list({"limit": 100}).auto_paging_iter())
    assert refunds == []  # nothing was "repaired" by a refund
    with Session(db) as session:
        orders = session.scalars(select(Order)).all()
    assert {(o.payment_status, o.capture_due) for o in orders} == {("captured", False)}
    assert backward_moves(db) == []
    verify_clean(system)
