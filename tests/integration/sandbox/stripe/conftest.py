"""The Stripe sandbox's capture tests' fixtures: a receiver, a sandbox whose endpoint
subscribes to the capture flows' events, and an SDK client on it (the sandbox and the
receiver emptied for each test). ``test_sandbox_stripe.py`` and
``test_sandbox_webhook_endpoints.py`` define their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from tests.support.sandbox import RunningSandbox, WebhookReceiver, running_sandbox
from tests.support.stripe_capture import stripe_client

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
