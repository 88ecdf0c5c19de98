"""The Stripe gateway's authorize, capture, void, 3-D Secure and partial refunds, against
the sandbox through the official SDK over loopback: what the saga relies on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from integrations.errors import PermanentProviderError
from integrations.stripe_gateway import StripeGateway


def authorize(gateway: StripeGateway, order_id: str, *, method: str = "pm_card_visa"):
    return gateway.charge(order_id=order_id, amount=2500, currency="usd", payment_method=method,
                          capture_method="manual")  # fmt: skip


def test_an_authorization_holds_the_amount_with_its_deadline(gateway):
    payment = authorize(gateway, str(uuid.uuid4()))

    assert payment.authorized and not payment.succeeded
    assert (payment.amount_capturable, payment.amount_received) == (2500, 0)
    assert payment.capture_method == "manual"
    week = datetime.now(UTC) + timedelta(days=7)
    assert abs((payment.capture_before - week).total_seconds()) < 120
    assert payment.client_secret is None  # shown only while the card needs its owner


def test_a_capture_repeated_under_its_key_captures_once(sandbox, gateway):
    order_id = str(uuid.uuid4())
    payment = authorize(gateway, order_id)

    first = gateway.capture(payment.id, order_id=order_id, amount=2500)
    again = gateway.capture(payment.id, order_id=order_id, amount=2500)

    assert first.succeeded and first.amount_received == 2500
    assert again.succeeded and again.amount_received == 2500
    (intent,) = sandbox.search_payment_intents(order_id)
    assert intent["amount_received"] == 2500


def test_a_capture_of_a_cancelled_authorization_reads_it_back_and_never_refunds(gateway):
    order_id = str(uuid.uuid4())
    payment = authorize(gateway, order_id)
    voided = gateway.cancel_payment(payment.id, order_id=order_id)

    after = gateway.capture(payment.id, order_id=order_id, amount=2500)

    assert voided.status == after.status == "canceled"
    with pytest.raises(PermanentProviderError):
        gateway.refund(order_id=order_id, payment_id=payment.id, amount=100, key="r-1")


def test_partial_refunds_each_once_and_never_beyond_the_capture(gateway):
    order_id = str(uuid.uuid4())
    payment = authorize(gateway, order_id)
    gateway.capture(payment.id, order_id=order_id, amount=2500)

    one = gateway.refund(order_id=order_id, payment_id=payment.id, amount=1000, key="refund_a")
    same = gateway.refund(order_id=order_id, payment_id=payment.id, amount=1000, key="refund_a")
    two = gateway.refund(order_id=order_id, payment_id=payment.id, amount=1500, key="refund_b")

    assert one.id == same.id and one.amount == 1000 and two.amount == 1500
    with pytest.raises(PermanentProviderError) as refused:
        gateway.refund(order_id=order_id, payment_id=payment.id, amount=1, key="refund_c")
    assert refused.value.code in ("charge_already_refunded", "amount_too_large")


def test_a_card_that_needs_3d_secure_gives_what_stripe_js_needs_then_authorizes(sandbox, gateway):
    order_id = str(uuid.uuid4())
    payment = authorize(gateway, order_id, method="pm_card_authenticationRequired")

    assert payment.needs_customer
    assert payment.client_secret and payment.next_action["type"] == "use_stripe_sdk"

    url = f"{sandbox.url}/_sandbox/stripe/payment_intents/{payment.id}/authenticate"
    assert requests.post(url, json={"outcome": "complete"}, timeout=5).status_code == 200
    after = gateway.retrieve_payment(payment.id)
    assert after.authorized and after.capture_before is not None and after.client_secret is None
