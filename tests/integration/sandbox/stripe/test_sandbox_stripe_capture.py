"""Separate authorization and capture in the Stripe sandbox, checked through the unmodified
SDK: held funds are captured (all or part, once per key) or voided, each with Stripe's
events sent to the endpoint that subscribes to them."""

from __future__ import annotations

import time

import pytest
import stripe

from sandbox.config import SEARCH_LAG_SECONDS
from tests.support.stripe_capture import WEEK, authorize, sent


def test_an_authorization_holds_the_amount_until_capture_before(sandbox, client):
    # When a card is confirmed with capture_method=manual
    intent = authorize(client)

    # Then the amount is held, not taken, and its charge says until when
    assert (intent.status, intent.capture_method) == ("requires_capture", "manual")
    assert (intent.amount_capturable, intent.amount_received) == (2000, 0)
    charge = intent.latest_charge
    assert (charge.captured, charge.amount_captured, charge.paid) == (False, 0, True)
    capture_before = charge.payment_method_details.card.capture_before
    assert capture_before == charge.created + WEEK
    assert abs(capture_before - (time.time() + WEEK)) < 60
    assert sent(sandbox) == ["payment_intent.amount_capturable_updated"]
    # and the charge is an id unless expanded, on a read as on a search (data.latest_charge)
    assert client.v1.payment_intents.retrieve(intent.id).latest_charge == charge.id
    expanded = client.v1.payment_intents.retrieve(intent.id, {"expand": ["latest_charge"]})
    assert expanded.latest_charge.payment_method_details.card.capture_before == capture_before
    query = {"query": "status:'requires_capture'", "expand": ["data.latest_charge"]}
    sandbox.advance_clock(
        SEARCH_LAG_SECONDS + 1
    )  # Stripe's search is not read-after-write: it catches up
    found = client.v1.payment_intents.search(query)
    assert [i.latest_charge.id for i in found.data] == [charge.id]
    with pytest.raises(stripe.InvalidRequestError, match=r"data\.latest_charge"):
        client.v1.payment_intents.search({**query, "expand": ["latest_charge"]})
    # while an automatic capture (the default) still takes the money at once
    paid = authorize(client, capture_method="automatic")
    assert (paid.status, paid.amount_received, paid.latest_charge.captured) == (
        "succeeded",
        2000,
        True,
    )
    assert "capture_before" not in paid.latest_charge.payment_method_details.card


def test_a_full_capture_takes_what_was_held(sandbox, client):
    intent = authorize(client)

    captured = client.v1.payment_intents.capture(intent.id, {"expand": ["latest_charge"]})

    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        2000,
        0,
    )
    charge = captured.latest_charge
    assert (charge.captured, charge.amount_captured, charge.amount_refunded) == (True, 2000, 0)
    assert "capture_before" not in charge.payment_method_details.card
    assert sent(sandbox)[1:] == ["charge.captured", "payment_intent.succeeded"]


def test_a_partial_capture_releases_the_rest_as_stripe_shows_it(client):
    intent = authorize(client)

    captured = client.v1.payment_intents.capture(
        intent.id, {"amount_to_capture": 1500, "expand": ["latest_charge"]}
    )

    # Then 1500 is taken and the other 500 released: refunded on the charge, not on the card
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        1500,
        0,
    )
    charge = captured.latest_charge
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (1500, 500, False)
    # and the authorization cannot be captured a second time
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.payment_intents.capture(intent.id, {"amount_to_capture": 500})
    assert again.value.code == "payment_intent_unexpected_state"


def test_capturing_more_than_was_held_is_refused_and_changes_nothing(client):
    intent = authorize(client)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id, {"amount_to_capture": 2001})

    assert (raised.value.http_status, raised.value.code) == (400, "amount_too_large")
    unchanged = client.v1.payment_intents.retrieve(intent.id)
    assert (unchanged.status, unchanged.amount_capturable) == ("requires_capture", 2000)


def test_a_capture_under_the_same_key_is_replayed_and_without_it_is_refused(sandbox, client):
    intent = authorize(client)
    key = {"idempotency_key": f"{intent.id}:capture"}
    first = client.v1.payment_intents.capture(intent.id, {"amount_to_capture": 1200}, key)

    again = client.v1.payment_intents.capture(intent.id, {"amount_to_capture": 1200}, key)
    with pytest.raises(stripe.InvalidRequestError) as unkeyed:
        client.v1.payment_intents.capture(intent.id, {"amount_to_capture": 1200})

    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert (again.id, again.status, again.amount_received) == (first.id, "succeeded", 1200)
    assert unkeyed.value.code == "payment_intent_unexpected_state"
    assert "may be captured: requires_capture" in str(unkeyed.value.user_message)
    assert sent(sandbox).count("charge.captured") == 1
    # and the authorizing request, sent again under its key, answers what it answered then
    authorized = authorize(client, key="order-9:payment", expand=[])
    client.v1.payment_intents.capture(authorized.id)
    replayed = authorize(client, key="order-9:payment", expand=[])
    assert (replayed.id, replayed.status) == (authorized.id, "requires_capture")
    assert replayed.amount_capturable == 2000


def test_cancelling_an_authorization_voids_it(sandbox, client):
    intent = authorize(client)

    cancelled = client.v1.payment_intents.cancel(
        intent.id, {"cancellation_reason": "requested_by_customer", "expand": ["latest_charge"]}
    )

    assert (cancelled.status, cancelled.cancellation_reason) == (
        "canceled",
        "requested_by_customer",
    )
    assert cancelled.amount_capturable == 0 and cancelled.amount_received == 0
    charge = cancelled.latest_charge
    assert (charge.captured, charge.refunded, charge.amount_refunded) == (False, True, 2000)
    assert sent(sandbox)[1:] == ["charge.refunded", "payment_intent.canceled"]
    with pytest.raises(stripe.InvalidRequestError) as late:
        client.v1.payment_intents.capture(intent.id)
    assert late.value.code == "payment_intent_unexpected_state"
    # while a captured payment cannot be cancelled any more
    captured = client.v1.payment_intents.capture(authorize(client).id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.cancel(captured.id)
    assert refused.value.code == "payment_intent_unexpected_state"
