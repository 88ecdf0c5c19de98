"""Refunds Stripe settles after its call answered, through the whole system: real API,
sandbox, workers and scheduler. A delivered order paid with the card whose refunds fail
afterwards (``pm_card_refundFail``) is refunded by an operator; Stripe then fails the
refund, its ``refund.failed`` event reaches the API, and the worker gives the amount back
to the order with the reason in its timeline. Another, under the ``refund_pending``
fault, stays pending until Stripe settles it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Order, OrderEvent, Refund
from tests.e2e.test_merchant_webhooks import admin_headers
from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.traffic import place_orders


def the_order(db, order_id: str) -> Order:
    with Session(db) as session:
        return session.get(Order, uuid.UUID(order_id))


def refunds_of(db, order_id: str) -> list[Refund]:
    with Session(db) as session:
        return list(session.scalars(select(Refund).where(Refund.order_id == uuid.UUID(order_id))))


def delivered(system, db, cards: list[str]) -> list[str]:
    """One delivered order per card, in the cards' order."""
    product = add_product(db, on_hand=10)
    placed = asyncio.run(place_orders(system.api_url, product, cards))
    order_ids = sorted(placed, key=lambda order_id: cards.index(placed[order_id]))
    wait_until(lambda: all(the_order(db, o).status == "delivered" for o in order_ids),
               timeout=60, what="the orders delivered", on_fail=system.order_statuses)  # fmt: skip
    return order_ids


def operator_refund(system, order_id: str, amount: str) -> dict:
    headers = {**admin_headers(system), "Idempotency-Key": f"refund-{uuid.uuid4().hex}"}
    response = requests.post(f"{system.api_url}/v1/admin/orders/{order_id}/refunds",
                             json={"amount": amount, "reason": "goodwill"}, headers=headers,
                             timeout=30)  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.slow
def test_refunds_stripe_settles_after_its_answer_are_refunded_only_when_they_are(system, db):
    # Given two delivered orders, one paid with a card whose refunds fail afterwards
    order_id, visa_order = delivered(system, db, ["pm_card_refundFail", "pm_card_visa"])

    # When an operator refunds part of it, which Stripe first answers succeeded, and
    # Stripe fails it afterwards (the sandbox's clock moved on)
    operator_refund(system, order_id, "1.00")
    wait_until(lambda: [r.provider_refund_id is not None for r in refunds_of(db, order_id)]
               == [True], timeout=30, what="the refund made at Stripe")  # fmt: skip
    requests.post(f"{system.sandbox_url}/_sandbox/clock", json={"seconds": 60},
                  timeout=10).raise_for_status()  # fmt: skip

    # Then the order learns it from the event alone: the refund failed after it had
    # succeeded, its amount not given back, the reason kept
    wait_until(lambda: [r.status for r in refunds_of(db, order_id)] == ["failed"],
               timeout=30, what="the refund failed", on_fail=system.order_statuses)  # fmt: skip
    kept = the_order(db, order_id)
    assert (kept.amount_refunded, kept.payment_status) == (0, "captured")
    assert "expired_or_canceled_card" in kept.last_error
    with Session(db) as session:
        outcomes = session.scalars(select(OrderEvent.outcome).where(
            OrderEvent.order_id == kept.id, OrderEvent.step == "refund")
            .order_by(OrderEvent.id)).all()  # fmt: skip
    assert [o for o in outcomes if o in ("refunded", "refund_failed")] == [
        "refunded", "refund_failed"]  # fmt: skip

    # Given the other order, and Stripe answering refunds pending
    order_id = visa_order
    system.faults(stripe={"refund_pending": 1.0, "refund_settle_after": 3600})

    # When an operator refunds part of it
    operator_refund(system, order_id, "1.00")

    # Then it waits, pending, with Stripe's id, and nothing says refunded
    wait_until(lambda: [r.provider_refund_id is not None for r in refunds_of(db, order_id)]
               == [True], timeout=30, what="the refund taken by Stripe")  # fmt: skip
    (refund,) = refunds_of(db, order_id)
    assert refund.status == "pending"
    assert the_order(db, order_id).payment_status == "captured"

    # And once Stripe settles it, its event makes it refunded
    settled = requests.post(
        f"{system.sandbox_url}/_sandbox/stripe/refunds/{refund.provider_refund_id}/settle",
        json={"outcome": "succeeded"}, timeout=10)  # fmt: skip
    assert settled.status_code == 200, settled.text
    wait_until(lambda: [r.status for r in refunds_of(db, order_id)] == ["succeeded"],
               timeout=30, what="the refund settled", on_fail=system.order_statuses)  # fmt: skip
    assert the_order(db, order_id).payment_status == "partially_refunded"
