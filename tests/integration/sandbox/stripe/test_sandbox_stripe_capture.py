"""Separate authorization and capture, 3-D Secure and refunds in the Stripe sandbox,
checked through the unmodified SDK: held funds are captured (all or part), voided, or
lapse when the sandbox clock passes ``capture_before``, each with Stripe's events sent
to the endpoint that subscribes to them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import stripe

from integrations.webhooks import verify_stripe_webhook
from sandbox import SandboxConfig, SandboxThread
from sandbox.config import SEARCH_LAG_SECONDS
from sandbox.stripe.endpoints import WebhookEndpoints
from sandbox.stripe.ledger import StripeLedger
from tests.support.sandbox import (
    STRIPE_SECRET,
    RunningSandbox,
    WebhookReceiver,
    running_sandbox,
    wait_for,
)

#: Stripe's authorization window for online card payments.
WEEK = 7 * 24 * 3600
#: The event types these flows produce, all subscribed by the sandbox's endpoint here.
CAPTURE_EVENTS = (
    "payment_intent.amount_capturable_updated",
    "payment_intent.requires_action",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.captured",
    "charge.expired",
    "charge.refunded",
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[RunningSandbox]:
    with running_sandbox(webhook_url=receiver.url, stripe_events=CAPTURE_EVENTS) as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox, receiver: WebhookReceiver) -> stripe.StripeClient:
    sandbox.reset()
    receiver.clear()
    return stripe_client(sandbox.url)


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_sandbox", base_addresses={"api": url}, max_network_retries=0
    )


def authorize(
    client: stripe.StripeClient, method: str = "pm_card_visa", *, key: str | None = None, **params
):
    values = {
        "amount": 2000,
        "currency": "usd",
        "payment_method_types": ["card"],
        "payment_method": method,
        "capture_method": "manual",
        "confirm": True,
        "expand": ["latest_charge"],
        **params,
    }
    return client.v1.payment_intents.create(values, {"idempotency_key": key} if key else None)


def sent(sandbox: RunningSandbox) -> list[str]:
    """The event types delivered to the sandbox's endpoint, in the order they were made."""
    return [d["type"] for d in sandbox.deliveries("stripe") if not d["duplicate"]]


def authenticate(sandbox: RunningSandbox, intent_id: str, outcome: object):
    url = f"{sandbox.url}/_sandbox/stripe/payment_intents/{intent_id}/authenticate"
    return requests.post(url, json={"outcome": outcome}, timeout=5)


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


@pytest.mark.parametrize(
    ("method", "capture_method", "settled", "event"),
    [
        (
            "pm_card_authenticationRequired",
            "manual",
            "requires_capture",
            "payment_intent.amount_capturable_updated",
        ),
        ("pm_card_threeDSecure2Required", "automatic", "succeeded", "payment_intent.succeeded"),
    ],
)
def test_a_completed_3d_secure_goes_on_as_a_plain_confirm(
    sandbox, client, method, capture_method, settled, event
):
    # Given a card that asks for 3-D Secure
    intent = authorize(client, method, capture_method=capture_method)
    assert (intent.status, intent.latest_charge) == ("requires_action", None)
    assert intent.next_action.type == "use_stripe_sdk"
    assert intent.next_action.use_stripe_sdk.type == "stripe_3ds2_fingerprint"
    assert intent.client_secret.startswith(f"{intent.id}_secret_")

    # When the customer completes the challenge
    answer = authenticate(sandbox, intent.id, "complete")

    # Then the payment goes on as if no challenge had been asked
    assert answer.status_code == 200 and answer.json()["status"] == settled
    done = client.v1.payment_intents.retrieve(intent.id, {"expand": ["latest_charge"]})
    assert (done.status, done.next_action) == (settled, None)
    assert done.latest_charge.captured is (capture_method == "automatic")
    assert sent(sandbox) == ["payment_intent.requires_action", event]


def test_a_failed_3d_secure_wants_another_payment_method(sandbox, client):
    intent = authorize(client, "pm_card_threeDSecure2Required")

    answer = authenticate(sandbox, intent.id, "fail")

    assert answer.status_code == 200
    failed = client.v1.payment_intents.retrieve(intent.id)
    assert (failed.status, failed.next_action, failed.latest_charge) == (
        "requires_payment_method",
        None,
        None,
    )
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    assert "failed authentication" in failed.last_payment_error.message
    assert sent(sandbox) == ["payment_intent.requires_action", "payment_intent.payment_failed"]
    # and the control API refuses what makes no sense
    assert authenticate(sandbox, intent.id, "complete").status_code == 409
    assert authenticate(sandbox, "pi_unknown", "complete").status_code == 404
    assert authenticate(sandbox, intent.id, "maybe").status_code == 400


def test_an_authorization_lapses_when_the_clock_passes_capture_before(sandbox, client, receiver):
    intent = authorize(client)
    sandbox.advance_clock(WEEK - 60)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"

    # When the sandbox clock passes capture_before
    sandbox.advance_clock(120)

    # Then the advance itself sent, without anyone asking first: the charge expired, then
    # the intent was cancelled; and the endpoint receives both, signed
    assert sent(sandbox)[1:] == ["charge.expired", "payment_intent.canceled"]
    hooks = receiver.wait_for(lambda got: len(got) == 3)
    events = [
        verify_stripe_webhook(h.body, h.headers["Stripe-Signature"], STRIPE_SECRET) for h in hooks
    ]
    assert {e.type for e in events[1:]} == {"charge.expired", "payment_intent.canceled"}
    assert {e.data["id"] for e in events[1:]} == {intent.id, intent.latest_charge.id}
    lapsed = client.v1.payment_intents.retrieve(intent.id, {"expand": ["latest_charge"]})
    assert (lapsed.status, lapsed.cancellation_reason, lapsed.amount_capturable) == (
        "canceled",
        "automatic",
        0,
    )
    assert (lapsed.latest_charge.refunded, lapsed.latest_charge.amount_refunded) == (True, 2000)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.capture(intent.id)


def test_a_read_after_capture_before_sees_the_authorization_lapsed():
    # Given a ledger on a clock nothing ticks but the test
    now = [1_000_000.0]
    sent_events: list[str] = []
    endpoints = WebhookEndpoints(
        lambda event, _: sent_events.append(event["type"]),
        secret="whsec",
        default_url=None,
        default_events=(),
    )
    ledger = StripeLedger(endpoints, clock=lambda: now[0], authorization_seconds=3600)
    params = {"amount": "2000", "currency": "usd", "payment_method_types": ["card"]}
    intent = ledger.create_intent(
        {**params, "payment_method": "pm_card_visa", "confirm": "true", "capture_method": "manual"}
    )

    # When time passes the deadline and the intent is read
    now[0] += 3600
    read = ledger.retrieve_intent(intent["id"], {})

    # Then the read sees it lapsed, and the events were made by that read
    assert (read["status"], read["cancellation_reason"]) == ("canceled", "automatic")
    assert sent_events[-2:] == ["charge.expired", "payment_intent.canceled"]


def test_refunds_take_what_was_captured_and_not_more(sandbox, client):
    # Given 2000 held and 1500 of it captured (500 released)
    intent = client.v1.payment_intents.capture(authorize(client).id, {"amount_to_capture": 1500})

    # When it is refunded in parts
    first = client.v1.refunds.create({"payment_intent": intent.id, "amount": 1000})
    with pytest.raises(stripe.InvalidRequestError) as beyond:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 501})
    rest = client.v1.refunds.create({"payment_intent": intent.id})

    # Then each takes its part, the rest what was left, and more is refused
    assert (first.amount, rest.amount) == (1000, 500)
    assert beyond.value.code == "amount_too_large"
    with pytest.raises(stripe.InvalidRequestError) as spent:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 100})
    assert spent.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list({"payment_intent": intent.id}).data
    assert {first.id, rest.id} <= {r.id for r in listed}
    assert sum(r.amount for r in listed) == 2000  # with the 500 released at capture
    refunded = [e for e in client.v1.events.list({"type": "charge.refunded"}).data]
    assert sorted(e.data.object.amount_refunded for e in refunded) == [1500, 2000]
    assert sent(sandbox).count("charge.refunded") == 2


def test_refunding_an_authorization_is_refused(client):
    intent = authorize(client)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create({"payment_intent": intent.id})
    with pytest.raises(stripe.InvalidRequestError) as by_charge:
        client.v1.refunds.create({"charge": intent.latest_charge.id})

    assert raised.value.code == by_charge.value.code == "charge_not_refundable"
    assert "cancel the PaymentIntent" in str(raised.value.user_message)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_authorizations_outlive_a_restart_and_a_reset_forgets_them(tmp_path: Path):
    config = SandboxConfig(state_path=str(tmp_path / "sandbox.sqlite3"), tracker_step_seconds=0)
    with SandboxThread(config) as server:
        held = authorize(stripe_client(server.url))
        waiting = authorize(stripe_client(server.url), "pm_card_authenticationRequired")

    with SandboxThread(config) as server:
        running = RunningSandbox(server)
        client = stripe_client(server.url)
        # the authorization is still held, and still lapses on the clock
        assert client.v1.payment_intents.retrieve(held.id).status == "requires_capture"
        running.advance_clock(WEEK)
        assert client.v1.payment_intents.retrieve(held.id).status == "canceled"
        # the challenge is still waiting for the customer
        assert authenticate(running, waiting.id, "fail").status_code == 200
        running.reset()
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.retrieve(held.id)


def test_an_authorization_lapses_on_its_own_as_time_passes():
    with SandboxThread(SandboxConfig(stripe_authorization_seconds=0.5)) as server:
        client = stripe_client(server.url)
        intent = authorize(client)

        wait_for(
            lambda: server_status(server, intent.id) == "canceled",
            what="the authorization to lapse",
        )


def server_status(server: SandboxThread, intent_id: str) -> str:
    """The intent's status as its events tell it: reading the events lapses nothing, so
    only the sandbox's own clock can have cancelled it."""
    events = requests.get(
        f"{server.url}/v1/events",
        params={"type": "payment_intent.canceled"},
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=5,
    ).json()["data"]
    found = [e["data"]["object"] for e in events if e["data"]["object"]["id"] == intent_id]
    return found[0]["status"] if found else "requires_capture"
