"""Authorizations in the Stripe sandbox lapse when its clock passes ``capture_before``, on
its own as time passes, and after a restart; checked through the unmodified SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
import stripe

from integrations.webhooks import verify_stripe_webhook
from sandbox import SandboxConfig, SandboxThread
from sandbox.stripe.endpoints import WebhookEndpoints
from sandbox.stripe.ledger import StripeLedger
from tests.support.sandbox import STRIPE_SECRET, RunningSandbox, wait_for
from tests.support.stripe_capture import (
    WEEK,
    authenticate,
    authorize,
    sent,
    server_status,
    stripe_client,
)


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
