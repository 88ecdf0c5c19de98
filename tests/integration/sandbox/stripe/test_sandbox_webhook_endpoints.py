"""Stripe's webhook endpoints in the sandbox, checked through the unmodified SDK: created,
read, changed and deleted as Stripe does it, and each event sent to the enabled
endpoints subscribed to its type, and nowhere else."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import stripe

from integrations.stripe_events import SUBSCRIBED_EVENTS
from tests.support.sandbox import (
    STRIPE_SECRET,
    RunningSandbox,
    WebhookReceiver,
    running_sandbox,
)

#: Where the sandbox's own endpoint posts on the receiver.
SANDBOX_PATH = "/v1/webhooks/stripe"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[RunningSandbox]:
    with running_sandbox(webhook_url=receiver.url) as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox, receiver: WebhookReceiver) -> stripe.StripeClient:
    sandbox.reset()
    receiver.clear()
    return stripe.StripeClient(
        "sk_test_endpoints", base_addresses={"api": sandbox.url}, max_network_retries=0
    )


def subscribe(client: stripe.StripeClient, receiver: WebhookReceiver, path: str, *events: str):
    return client.v1.webhook_endpoints.create(
        {"url": f"{receiver.url}{path}", "enabled_events": list(events)}
    )


def pay_and_refund(client: stripe.StripeClient) -> stripe.PaymentIntent:
    """Events: payment_intent.succeeded, then charge.refunded."""
    params = {"amount": 1250, "currency": "usd", "payment_method_types": ["card"]}
    paid = client.v1.payment_intents.create(
        {**params, "payment_method": "pm_card_visa", "confirm": True}
    )
    client.v1.refunds.create({"payment_intent": paid.id})
    return paid


def sent(sandbox: RunningSandbox) -> Counter[tuple[str, str]]:
    """(receiver path, event type) of every Stripe delivery the sandbox made."""
    return Counter((urlsplit(d["url"]).path, d["type"]) for d in sandbox.deliveries("stripe"))


def test_endpoints_are_created_read_changed_and_deleted_through_the_sdk(client, receiver):
    # When an endpoint is created
    created = client.v1.webhook_endpoints.create(
        {
            "url": f"{receiver.url}/shop",
            "enabled_events": ["payment_intent.succeeded"],
            "description": "the shop",
            "metadata": {"team": "payments"},
        }
    )

    # Then it is enabled, and signs with the secret the API verifies with
    assert isinstance(created, stripe.WebhookEndpoint) and created.status == "enabled"
    assert created.secret == STRIPE_SECRET
    assert (created.enabled_events, created.metadata.to_dict()) == (
        ["payment_intent.succeeded"],
        {"team": "payments"},
    )
    # and it can be read back (without its secret) and is listed, newest first
    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    assert fetched.url == created.url and "secret" not in fetched
    listed = client.v1.webhook_endpoints.list().data
    assert len(listed) == 2 and listed[0].id == created.id

    # When it is changed, then deleted
    changed = client.v1.webhook_endpoints.update(
        created.id, {"enabled_events": ["*"], "disabled": True, "metadata": {"team": ""}}
    )
    deleted = client.v1.webhook_endpoints.delete(created.id)

    # Then each answer says so, and it is gone
    assert (changed.status, changed.enabled_events, changed.metadata.to_dict()) == (
        "disabled",
        ["*"],
        {},
    )
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.webhook_endpoints.retrieve(created.id)
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"enabled_events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/hooks"}, "enabled_events"),
        ({"url": "127.0.0.1:9/hooks", "enabled_events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/hooks", "enabled_events": ["payments"]}, "enabled_events"),
    ],
)
def test_an_endpoint_without_a_url_or_with_bad_event_types_is_refused(client, params, param):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.create(params)
    assert (refused.value.http_status, refused.value.param) == (400, param)
    assert len(client.v1.webhook_endpoints.list().data) == 1


def test_the_sandbox_starts_with_an_endpoint_for_what_the_saga_acts_on(client, receiver):
    (endpoint,) = client.v1.webhook_endpoints.list().data
    assert endpoint.url == f"{receiver.url}{SANDBOX_PATH}"
    assert endpoint.enabled_events == list(SUBSCRIBED_EVENTS)
    assert endpoint.status == "enabled"


def test_an_endpoint_gets_only_the_event_types_it_subscribes_to(sandbox, client, receiver):
    # Given an endpoint for payment_intent.succeeded only, beside the sandbox's own
    subscribe(client, receiver, "/succeeded", "payment_intent.succeeded")

    # When a payment is made and refunded
    pay_and_refund(client)

    # Then each endpoint got the payment's event, and neither got charge.refunded
    expected = {
        ("/succeeded", "payment_intent.succeeded"): 1,
        (SANDBOX_PATH, "payment_intent.succeeded"): 1,
    }
    assert sent(sandbox) == expected
    received = receiver.wait_for(lambda hooks: len(hooks) == 2)
    assert {hook.path for hook in received} == {"/succeeded", SANDBOX_PATH}


def test_an_endpoint_subscribed_to_everything_gets_every_event(sandbox, client, receiver):
    # Given an endpoint for "*"
    subscribe(client, receiver, "/all", "*")

    # When a payment is made and refunded
    pay_and_refund(client)

    # Then it got both events, signed as the API expects
    assert sent(sandbox) == {
        ("/all", "payment_intent.succeeded"): 1,
        ("/all", "charge.refunded"): 1,
        (SANDBOX_PATH, "payment_intent.succeeded"): 1,
    }
    received = receiver.wait_for(lambda hooks: len(hooks) == 3)
    kinds = [
        stripe.Webhook.construct_event(h.body, h.headers["Stripe-Signature"], STRIPE_SECRET).type
        for h in received
        if h.path == "/all"
    ]
    assert sorted(kinds) == ["charge.refunded", "payment_intent.succeeded"]


def test_a_disabled_endpoint_gets_nothing_until_it_is_enabled_again(sandbox, client, receiver):
    # Given an endpoint for "*", disabled
    paused = subscribe(client, receiver, "/paused", "*")
    client.v1.webhook_endpoints.update(paused.id, {"disabled": True})

    # When a payment is made, then the endpoint is enabled and another is made
    pay_and_refund(client)
    assert not [path for path, _ in sent(sandbox) if path == "/paused"]
    client.v1.webhook_endpoints.update(paused.id, {"disabled": False})
    pay_and_refund(client)

    # Then it got only the second payment's events
    assert sent(sandbox)[("/paused", "payment_intent.succeeded")] == 1
    assert sent(sandbox)[("/paused", "charge.refunded")] == 1


def test_events_no_endpoint_wants_are_kept_but_sent_nowhere(sandbox, client):
    # Given no endpoint at all
    (own,) = client.v1.webhook_endpoints.list().data
    client.v1.webhook_endpoints.delete(own.id)

    # When a payment is made and refunded
    paid = pay_and_refund(client)

    # Then nothing was sent, and Stripe still has both events
    assert sandbox.deliveries("stripe") == []
    events = client.v1.events.list().data
    assert [(e.type, e.pending_webhooks) for e in events] == [
        ("charge.refunded", 0),
        ("payment_intent.succeeded", 0),
    ]
    (refunded,) = client.v1.events.list({"type": "charge.refunded"}).data
    assert refunded.data.object.payment_intent == paid.id
    assert client.v1.events.retrieve(refunded.id).id == refunded.id
    assert len(client.v1.events.list({"type": "payment_intent.*"}).data) == 1


def test_a_reset_brings_back_only_the_sandbox_endpoint(sandbox, client, receiver):
    subscribe(client, receiver, "/extra", "*")
    sandbox.reset()
    (endpoint,) = client.v1.webhook_endpoints.list().data
    assert endpoint.url == f"{receiver.url}{SANDBOX_PATH}"
