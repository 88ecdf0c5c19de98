"""Refunds in the Stripe sandbox that settle later, as Stripe's do, checked through the
unmodified SDK: one on ``pm_card_refundFail`` is made, then fails; under the fault
``refund_pending`` one is made pending, then succeeds; the control API settles either at
once; a failed refund gives its amount back; what is under way outlives a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import stripe

from integrations.webhooks import verify_stripe_webhook
from sandbox import ProviderFaults, SandboxConfig, SandboxThread
from tests.integration.sandbox.stripe.conftest import CAPTURE_EVENTS
from tests.support.sandbox import (
    STRIPE_SECRET,
    RunningSandbox,
    WebhookReceiver,
    running_sandbox,
    wait_for,
)
from tests.support.stripe_capture import authorize, sent, stripe_client

#: The events of a refund that settles later, on top of the capture flows'.
REFUND_EVENTS = ("charge.refund.updated", "refund.updated", "refund.failed")
#: Sandbox seconds before a refund under way settles here: far enough that the wall
#: clock never settles one while a test looks, so only the test's clock moves do.
LATER = 600.0
FAILED = ["charge.refunded", "charge.refund.updated", "refund.updated", "refund.failed"]


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[RunningSandbox]:
    faults = {"stripe": ProviderFaults(refund_fail_after=LATER, refund_settle_after=LATER)}
    with running_sandbox(
        webhook_url=receiver.url, stripe_events=CAPTURE_EVENTS + REFUND_EVENTS, faults=faults
    ) as running:
        yield running


def pay(client: stripe.StripeClient, method: str = "pm_card_visa"):
    return authorize(client, method, capture_method="automatic", metadata={"order_id": "o-1"})


def charge_of(client: stripe.StripeClient, intent_id: str):
    return client.v1.payment_intents.retrieve(
        intent_id, {"expand": ["latest_charge"]}
    ).latest_charge


def settle(sandbox: RunningSandbox, refund_id: str, outcome: object) -> requests.Response:
    url = f"{sandbox.url}/_sandbox/stripe/refunds/{refund_id}/settle"
    return requests.post(url, json={"outcome": outcome}, timeout=5)


def test_a_refund_on_the_refund_fail_card_is_made_then_fails_when_the_clock_passes(
    sandbox, client, receiver
):
    # Given a payment with Stripe's card whose refunds fail
    intent = pay(client, "pm_card_refundFail")
    card = intent.latest_charge.payment_method_details.card
    assert (intent.status, card.brand, card.last4) == ("succeeded", "visa", "5126")

    # When it is refunded, the refund is made at first
    refund = client.v1.refunds.create(
        {"payment_intent": intent.id, "amount": 1500, "metadata": {"order_id": "o-1"}}
    )
    assert refund.status == "succeeded"
    sandbox.advance_clock(LATER - 60)
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert charge_of(client, intent.id).amount_refunded == 1500

    # Then once the clock passes the refund's time it has failed, and the charge has
    # its amount back
    sandbox.advance_clock(60)
    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    charge = charge_of(client, intent.id)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    listed = client.v1.refunds.list({"payment_intent": intent.id}).data
    assert [(r.id, r.status) for r in listed] == [(refund.id, "failed")]
    # and the endpoint was sent, signed, the three events about the failed refund
    assert sent(sandbox)[-4:] == FAILED
    hooks = receiver.wait_for(lambda got: len(got) == 5)
    events = [
        verify_stripe_webhook(h.body, h.headers["Stripe-Signature"], STRIPE_SECRET) for h in hooks
    ]
    about_refund = [e for e in events if e.type in REFUND_EVENTS]
    assert sorted(e.type for e in about_refund) == sorted(REFUND_EVENTS)
    for event in about_refund:
        shown = event.data
        assert (shown["id"], shown["object"], shown["status"]) == (refund.id, "refund", "failed")
        assert (shown["payment_intent"], shown["charge"]) == (intent.id, charge.id)
        assert (shown["amount"], shown["metadata"]) == (1500, {"order_id": "o-1"})
        assert shown["failure_reason"] == "expired_or_canceled_card"


def test_the_control_api_settles_a_refund_at_once_and_refuses_what_is_final(sandbox, client):
    intent = pay(client, "pm_card_refundFail")
    refund = client.v1.refunds.create({"payment_intent": intent.id})

    answer = settle(sandbox, refund.id, "failed")

    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["failure_reason"]) == (
        "failed",
        "expired_or_canceled_card",
    )
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    assert charge_of(client, intent.id).amount_refunded == 0
    assert sent(sandbox)[-4:] == FAILED
    # a refund already final, one that never was under way, and nonsense are refused
    assert settle(sandbox, refund.id, "succeeded").status_code == 409
    plain = client.v1.refunds.create({"payment_intent": pay(client).id})
    assert settle(sandbox, plain.id, "failed").status_code == 409
    assert settle(sandbox, "re_unknown", "failed").status_code == 404
    assert settle(sandbox, plain.id, "maybe").status_code == 400
    assert client.v1.refunds.retrieve(plain.id).status == "succeeded"


def test_a_refund_fail_card_refund_settled_succeeded_stays_made(sandbox, client):
    intent = pay(client, "pm_card_refundFail")
    refund = client.v1.refunds.create({"payment_intent": intent.id})

    assert settle(sandbox, refund.id, "succeeded").status_code == 200
    sandbox.advance_clock(LATER)

    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert charge_of(client, intent.id).amount_refunded == 2000
    assert not set(REFUND_EVENTS) & set(sent(sandbox))


def test_a_pending_refund_succeeds_later_and_its_key_replays_the_first_answer(sandbox, client):
    # Given every new refund made pending
    sandbox.set_faults(stripe={"refund_pending": 1})
    intent = pay(client)

    # When one is asked for under an idempotency key
    refund = client.v1.refunds.create({"payment_intent": intent.id}, {"idempotency_key": "r-1"})

    # Then it is pending, counted on the charge, until the clock passes its time
    assert (refund.status, refund.pending_reason) == ("pending", "processing")
    assert charge_of(client, intent.id).amount_refunded == 2000
    sandbox.advance_clock(LATER)
    done = client.v1.refunds.retrieve(refund.id)
    assert (done.status, done.pending_reason) == ("succeeded", None)
    assert sent(sandbox)[-3:] == ["charge.refunded", "charge.refund.updated", "refund.updated"]
    # and the key still answers what was answered first, refunding nothing twice
    again = client.v1.refunds.create({"payment_intent": intent.id}, {"idempotency_key": "r-1"})
    assert (again.id, again.status) == (refund.id, "pending")
    assert len(client.v1.refunds.list({"payment_intent": intent.id}).data) == 1


def test_a_pending_refund_that_fails_gives_its_amount_back(sandbox, client):
    sandbox.set_faults(stripe={"refund_pending": 1})
    intent = pay(client)
    refund = client.v1.refunds.create({"payment_intent": intent.id, "amount": 800})

    answer = settle(sandbox, refund.id, "failed")

    assert (answer.json()["status"], answer.json()["failure_reason"]) == ("failed", "unknown")
    charge = charge_of(client, intent.id)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert sent(sandbox)[-3:] == FAILED[1:]
    # the whole amount can be refunded again
    sandbox.clear_faults()
    assert client.v1.refunds.create({"payment_intent": intent.id}).amount == 2000


def test_refunds_under_way_outlive_a_restart(tmp_path: Path):
    faults = {"stripe": ProviderFaults(refund_fail_after=LATER, refund_settle_after=LATER)}
    config = SandboxConfig(
        state_path=str(tmp_path / "sandbox.sqlite3"), tracker_step_seconds=0, faults=faults
    )
    with SandboxThread(config) as server:
        client = stripe_client(server.url)
        failing = client.v1.refunds.create({"payment_intent": pay(client, "pm_card_refundFail").id})
        RunningSandbox(server).set_faults(stripe={"refund_pending": 1})
        pending = client.v1.refunds.create({"payment_intent": pay(client).id})

    with SandboxThread(config) as server:
        client = stripe_client(server.url)
        assert client.v1.refunds.retrieve(failing.id).status == "succeeded"
        assert client.v1.refunds.retrieve(pending.id).status == "pending"
        RunningSandbox(server).advance_clock(LATER)
        listed = client.v1.refunds.list({"payment_intent": failing.payment_intent}).data
        assert [r.status for r in listed] == ["failed"]
        assert client.v1.refunds.retrieve(pending.id).status == "succeeded"


def test_a_refund_fails_on_its_own_as_time_passes():
    faults = {"stripe": ProviderFaults(refund_fail_after=0.2)}
    with SandboxThread(SandboxConfig(faults=faults)) as server:
        client = stripe_client(server.url)
        refund = client.v1.refunds.create({"payment_intent": pay(client, "pm_card_refundFail").id})

        wait_for(lambda: _event_types(server) >= {"refund.failed"}, what="the refund to fail")
        assert client.v1.refunds.retrieve(refund.id).status == "failed"


def _event_types(server: SandboxThread) -> set[str]:
    """Event types the sandbox made, read without settling anything: ``/v1/events``."""
    events = requests.get(
        f"{server.url}/v1/events",
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=5,
    ).json()["data"]
    return {event["type"] for event in events}
