"""The sandbox speaks enough Stripe for the unmodified SDK: checked through the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import stripe

from sandbox.config import SEARCH_LAG_SECONDS
from tests.support.sandbox import RunningSandbox, running_sandbox

CARD = {"payment_method_types": ["card"]}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox) -> stripe.StripeClient:
    sandbox.reset()
    return stripe.StripeClient(
        "sk_test_sandbox", base_addresses={"api": sandbox.url}, max_network_retries=0
    )


def create(client: stripe.StripeClient, key: str | None = None, **params):
    values = {"amount": 2000, "currency": "usd", **CARD, **params}
    return client.v1.payment_intents.create(values, {"idempotency_key": key} if key else None)


def test_a_replayed_key_returns_the_stored_answer_marked_as_replayed(client):
    # Given a PaymentIntent created under a key
    first = create(client, "key-1", payment_method="pm_card_visa", confirm=True)

    # When the same request is sent again
    again = create(client, "key-1", payment_method="pm_card_visa", confirm=True)

    # Then Stripe replays it rather than charging again
    assert again.id == first.id and again.status == "succeeded"
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.payment_intents.list().data) == 1


def test_a_key_reused_on_another_endpoint_is_refused(client):
    intent = create(client, "key-2", payment_method="pm_card_visa", confirm=True)
    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        client.v1.refunds.create({"payment_intent": intent.id}, {"idempotency_key": "key-2"})


def test_a_decline_is_a_card_error_with_the_payment_intent(client):
    # When a declined card is charged
    with pytest.raises(stripe.CardError) as raised:
        create(client, payment_method="pm_card_chargeDeclinedInsufficientFunds", confirm=True)

    # Then the error looks like Stripe's, and the PaymentIntent waits for another card
    error = raised.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error.decline_code == "insufficient_funds"
    intent = client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == "insufficient_funds"


def test_create_then_confirm_then_refund_then_list(sandbox, client):
    intent = create(client, metadata={"order_id": "o-7"})
    assert intent.status == "requires_payment_method"
    paid = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert paid.status == "succeeded" and paid.amount_received == 2000

    refund = client.v1.refunds.create({"payment_intent": paid.id})
    assert (refund.amount, refund.status, refund.charge) == (2000, "succeeded", paid.latest_charge)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create({"payment_intent": paid.id})
    assert raised.value.code == "charge_already_refunded"

    listed = client.v1.refunds.list({"payment_intent": paid.id})
    assert [r.id for r in listed.data] == [refund.id]
    sandbox.advance_clock(
        SEARCH_LAG_SECONDS + 1
    )  # Stripe's search is not read-after-write: it catches up
    found = client.v1.payment_intents.search({"query": "metadata['order_id']:'o-7'"})
    assert [i.id for i in found.data] == [paid.id]


def test_cancel_only_from_a_cancelable_status(client):
    pending = create(client)
    cancelled = client.v1.payment_intents.cancel(pending.id, {"cancellation_reason": "abandoned"})
    assert (cancelled.status, cancelled.cancellation_reason) == ("canceled", "abandoned")

    paid = create(client, payment_method="pm_card_visa", confirm=True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.cancel(paid.id)
    assert raised.value.code == "payment_intent_unexpected_state"


def test_automatic_payment_methods_need_a_return_url_or_no_redirects(client):
    params = {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"}
    with pytest.raises(stripe.InvalidRequestError, match="return_url"):
        client.v1.payment_intents.create({**params, "confirm": True})
    no_redirects = {"enabled": True, "allow_redirects": "never"}
    intent = client.v1.payment_intents.create(
        {**params, "confirm": True, "automatic_payment_methods": no_redirects}
    )
    assert intent.status == "succeeded"


def test_unknown_objects_and_bad_parameters_answer_like_stripe(client):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as small:
        create(client, amount=10)
    assert small.value.code == "amount_too_small"
    with pytest.raises(stripe.InvalidRequestError) as unknown_card:
        create(client, payment_method="pm_card_unknown", confirm=True)
    assert unknown_card.value.code == "resource_missing"


def test_an_api_key_is_required(sandbox):
    answer = requests.get(f"{sandbox.url}/v1/payment_intents", timeout=5)
    assert answer.status_code == 401
    assert "did not provide an API key" in answer.json()["error"]["message"]
    publishable = stripe.StripeClient("pk_test_x", base_addresses={"api": sandbox.url})
    with pytest.raises(stripe.AuthenticationError):
        publishable.v1.payment_intents.list()
