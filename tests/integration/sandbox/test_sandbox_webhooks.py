"""The sandbox's webhooks: signed as Stripe and EasyPost sign them, verified by the
helpers the API uses, delivered in the background with retries, duplicates, delays and
reordering on request."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from integrations.easypost_gateway import build_easypost_carrier
from integrations.errors import InvalidSignature, PermanentProviderError
from integrations.stripe_gateway import StripeGateway, build_stripe_gateway
from integrations.webhooks import verify_easypost_webhook, verify_stripe_webhook
from tests.support.sandbox import (
    EASYPOST_SECRET,
    FAST_RETRIES,
    STRIPE_SECRET,
    TEST_TIMEOUT,
    Received,
    RunningSandbox,
    WebhookReceiver,
    running_sandbox,
    wait_for,
)

ADDRESS = {
    "name": "Ada",
    "line1": "1 Main St",
    "city": "Springfield",
    "postal_code": "12345",
    "country": "US",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[RunningSandbox]:
    with running_sandbox(webhook_url=receiver.url, tracker_step_seconds=60) as running:
        yield running


@pytest.fixture
def gateway(sandbox: RunningSandbox, receiver: WebhookReceiver) -> StripeGateway:
    sandbox.reset()
    receiver.clear()
    return build_stripe_gateway(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def pay(gateway: StripeGateway, method: str = "pm_card_visa"):
    order_id = str(uuid.uuid4())
    return gateway.charge(order_id=order_id, amount=1250, currency="usd", payment_method=method)


def stripe_events(received: list[Received]):
    return [
        verify_stripe_webhook(hook.body, hook.headers["Stripe-Signature"], STRIPE_SECRET)
        for hook in received
        if hook.path == "/v1/webhooks/stripe"
    ]


def test_stripe_events_arrive_signed_and_verify(gateway, receiver):
    # Given a paid order and a declined one
    paid = pay(gateway)
    with pytest.raises(PermanentProviderError):
        pay(gateway, "pm_card_chargeDeclined")

    # When their webhooks arrive
    received = receiver.wait_for(lambda hooks: len(hooks) == 2)

    # Then each verifies with the API's helper and says what happened
    events = {event.type: event for event in stripe_events(received)}
    assert set(events) == {"payment_intent.succeeded", "payment_intent.payment_failed"}
    assert events["payment_intent.succeeded"].data["id"] == paid.id
    assert events["payment_intent.payment_failed"].data["last_payment_error"]["decline_code"] == (
        "generic_decline"
    )
    # and a body someone altered does not
    forged = received[0].body.replace(b"succeeded", b"SUCCEEDED")
    with pytest.raises(InvalidSignature):
        verify_stripe_webhook(forged, received[0].headers["Stripe-Signature"], STRIPE_SECRET)


def test_events_the_saga_does_not_act_on_are_not_sent(sandbox, gateway):
    # Given the sandbox's endpoint subscribes to the saga's event types (the default)
    paid = pay(gateway)

    # When the payment is refunded
    gateway.refund(order_id=paid.order_id, payment_id=paid.id)

    # Then only the payment's event went out; charge.refunded was kept, not sent
    assert [d["type"] for d in sandbox.deliveries("stripe")] == ["payment_intent.succeeded"]


def test_a_sandbox_subscribed_to_everything_sends_every_event(receiver):
    # Given a sandbox whose endpoint subscribes to "*"
    receiver.clear()
    with running_sandbox(webhook_url=receiver.url, stripe_events=("*",)) as everything:
        gateway = build_stripe_gateway(everything.settings(), timeout=TEST_TIMEOUT)

        # When a payment is made and refunded
        paid = pay(gateway)
        gateway.refund(order_id=paid.order_id, payment_id=paid.id)

        # Then both events arrive, signed
        received = receiver.wait_for(lambda hooks: len(hooks) == 2)
    events = {event.type: event for event in stripe_events(received)}
    assert set(events) == {"payment_intent.succeeded", "charge.refunded"}
    assert events["charge.refunded"].data["payment_intent"] == paid.id


def test_tracker_updates_arrive_signed_as_the_clock_moves(sandbox, gateway, receiver):
    # Given a bought label (trackers step every 60 sandbox seconds)
    carrier = build_easypost_carrier(sandbox.settings(), timeout=TEST_TIMEOUT)
    label = carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS)

    # When three steps' worth of time passes
    sandbox.advance_clock(180)

    # Then three tracker.updated events arrive, each verifiable, walking the parcel home
    received = receiver.wait_for(lambda hooks: len(hooks) == 3)
    events = [verify_easypost_webhook(h.body, h.headers, EASYPOST_SECRET) for h in received]
    assert {event.type for event in events} == {"tracker.updated"}
    assert {event.data["id"] for event in events} == {label.tracker_id}
    moves = {
        (json.loads(h.body)["previous_attributes"]["status"], e.data["status"])
        for h, e in zip(received, events, strict=True)
    }
    assert moves == {
        ("pre_transit", "in_transit"),
        ("in_transit", "out_for_delivery"),
        ("out_for_delivery", "delivered"),
    }
    with pytest.raises(InvalidSignature):
        verify_easypost_webhook(received[0].body, received[0].headers, "another-secret")


def test_tracker_updates_come_on_their_own_and_not_before_a_step(receiver):
    # Given a sandbox whose trackers move every 0.2 s, and nobody asking about them
    step = 0.2
    receiver.clear()
    with running_sandbox(webhook_url=receiver.url, tracker_step_seconds=step) as moving:
        carrier = build_easypost_carrier(moving.settings(), timeout=TEST_TIMEOUT)

        # When a label is bought
        before_purchase = time.time()
        label = carrier.ship(order_id=str(uuid.uuid4()), address=ADDRESS)

        # Then the parcel's three moves are pushed to the API without a single poll
        received = receiver.wait_for(lambda hooks: len(hooks) == 3)
        deliveries = moving.deliveries("easypost")
        requests_made = [(r["method"], r["path"]) for r in moving.requests("easypost")]
    events = [verify_easypost_webhook(h.body, h.headers, EASYPOST_SECRET) for h in received]
    assert [e.data["status"] for e in events] == ["in_transit", "out_for_delivery", "delivered"]
    assert {e.data["id"] for e in events} == {label.tracker_id}
    assert requests_made[-1][0] == "POST" and requests_made[-1][1].endswith("/buy")
    # and the first came no sooner than a step after the purchase was asked for
    assert min(d["created"] for d in deliveries) >= before_purchase + step


def test_a_failed_delivery_is_retried_until_it_lands(sandbox, gateway, receiver):
    # Given the API answers 500 twice
    receiver.fail_next(2)

    # When a payment succeeds
    paid = pay(gateway)

    # Then the event lands on the third try
    (event,) = stripe_events(receiver.wait_for(lambda hooks: len(hooks) == 1))
    assert event.data["id"] == paid.id
    delivery = wait_for(lambda: [d for d in sandbox.deliveries() if d["status"] == "delivered"])
    assert delivery[0]["attempts"] == 3


def test_a_reset_drops_deliveries_still_being_retried(sandbox, gateway, receiver):
    # Given an event the API keeps refusing
    receiver.fail_next(1000)
    pay(gateway)
    wait_for(lambda: sandbox.deliveries()[0]["attempts"] >= 2, what="a retried delivery")

    # When the sandbox is reset
    sandbox.reset()

    # Then the sandbox forgot them (the retries were cancelled, not left running)
    assert sandbox.deliveries() == []


def test_delivery_never_holds_up_the_api_answer(sandbox, gateway, receiver):
    # Given an API that takes its time answering webhooks
    receiver.hold()

    # When a payment is made, its answer comes while the webhook still waits on the API
    paid = pay(gateway)
    receiver.wait_for(lambda hooks: len(hooks) == 1)
    assert [d["status"] for d in sandbox.deliveries()] == ["pending"]

    # Then, once the API answers, the delivery is done
    receiver.release()
    wait_for(lambda: sandbox.deliveries()[0]["status"] == "delivered", what="the delivery")
    assert paid.succeeded


def test_duplicates_carry_the_same_event_id(sandbox, gateway, receiver):
    # Given Stripe sends every event twice
    sandbox.set_faults(stripe={"webhook_duplicate_rate": 1.0})

    # When a payment succeeds
    pay(gateway)

    # Then the API sees the same event twice
    first, second = stripe_events(receiver.wait_for(lambda hooks: len(hooks) == 2))
    assert first == second
    assert sorted(d["duplicate"] for d in sandbox.deliveries()) == [False, True]


def test_a_held_back_event_is_overtaken_by_a_later_one(sandbox, gateway, receiver):
    # Given the first payment's event is held back for a second
    sandbox.set_faults(stripe={"webhook_reorder_rate": 1.0, "webhook_reorder_hold": 1.0})
    earlier = pay(gateway)
    sandbox.set_faults(stripe={"webhook_reorder_rate": 0.0})

    # When a second payment follows at once
    later = pay(gateway)

    # Then the later event arrives first
    events = stripe_events(receiver.wait_for(lambda hooks: len(hooks) == 2))
    assert [event.data["id"] for event in events] == [later.id, earlier.id]
