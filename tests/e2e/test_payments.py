"""Payments through the whole system, with each capture policy: real API, sandbox,
worker processes and scheduler. The outcome is read from the orders and from Stripe's
own records (the sandbox's list and search endpoints, through the stripe SDK)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import requests
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Order
from tests.e2e.test_order_saga import verify_clean
from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.traffic import place_orders

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"
SCA, SCA2 = "pm_card_authenticationRequired", "pm_card_threeDSecure2Required"


def intents(system) -> dict[str, list[dict]]:
    """Every PaymentIntent Stripe holds, by order."""
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": system.sandbox_url})
    found: dict[str, list[dict]] = {}
    for obj in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter():
        intent = obj.to_dict()
        found.setdefault(intent["metadata"]["order_id"], []).append(intent)
    return found


def orders_in(db, status: str) -> list[Order]:
    with Session(db) as session:
        return list(session.scalars(select(Order).where(Order.status == status)))


def authenticate(system, intent_id: str, outcome: str) -> None:
    url = f"{system.sandbox_url}/_sandbox/stripe/payment_intents/{intent_id}/authenticate"
    response = requests.post(url, json={"outcome": outcome}, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.slow
@pytest.mark.system_env(RESERVATION_TTL_SECONDS="20")
def test_authorized_at_order_captured_at_shipment_with_3d_secure_cards(system, db):
    # Given good cards, declined ones, and cards that need 3-D Secure: three whose owners
    # authenticate, one who fails and one who never does
    product = add_product(db, on_hand=100)
    cards = [VISA] * 10 + [DECLINED] * 2 + [SCA, SCA2, SCA] + [SCA2] + [SCA]
    placed = asyncio.run(place_orders(system.api_url, product, cards))

    # When the 3-D Secure orders wait for their owners, and five of them act
    waiting = wait_until(lambda: (lambda o: o if len(o) == 5 else None)(
        orders_in(db, "requires_action")), timeout=60, what="5 orders in requires_action",
        on_fail=system.order_statuses)  # fmt: skip
    by_id = {str(order.id): order for order in waiting}
    sca = [oid for oid, card in placed.items() if card in (SCA, SCA2)]
    assert set(sca) == set(by_id)
    for order_id in sca[:3]:
        authenticate(system, by_id[order_id].payment_intent_id, "complete")
    authenticate(system, by_id[sca[3]].payment_intent_id, "fail")

    # Then every order ends: shipped ones delivered, the rest cancelled with stock back
    statuses = system.wait_all_terminal(expected=len(cards), timeout=180)
    assert statuses == {"delivered": 13, "cancelled": 4}
    verify_clean(system)

    # and Stripe holds, per order, what the policy promises: one authorization captured
    # once for each delivered order, nothing captured for the others
    held = intents(system)
    for order in orders_in(db, "delivered"):
        (intent,) = held[str(order.id)]
        assert intent["capture_method"] == "manual" and intent["status"] == "succeeded"
        assert intent["amount_received"] == intent["amount"] == order.amount_captured
        assert order.payment_status == "captured"
    for order in orders_in(db, "cancelled"):
        assert all(i["status"] != "succeeded" for i in held.get(str(order.id), []))
        assert order.amount_captured == 0
    outcomes = Counter(order.payment_status for order in orders_in(db, "cancelled"))
    assert outcomes == {"failed": 3, "voided": 1}  # two declines, one failed 3DS; one abandoned


@pytest.mark.slow
@pytest.mark.system_env(PAYMENT_CAPTURE="order")
def test_captured_at_order(system, db):
    product = add_product(db, on_hand=100)
    asyncio.run(place_orders(system.api_url, product, [VISA] * 8 + [DECLINED] * 2))

    assert system.wait_all_terminal(expected=10) == {"delivered": 8, "cancelled": 2}
    verify_clean(system)
    held = intents(system)
    for order in orders_in(db, "delivered"):
        (intent,) = held[str(order.id)]
        assert intent["capture_method"] == "automatic" and intent["status"] == "succeeded"
        assert order.capture_due is False and order.payment_status == "captured"
