"""Stripe's separate authorization and capture as the sandbox tests drive it, through the
unmodified SDK: a client on a sandbox, a card authorized, 3-D Secure answered, and the
events the sandbox sent."""

from __future__ import annotations

import requests
import stripe

from sandbox import SandboxThread
from tests.support.sandbox import RunningSandbox

#: Stripe's authorization window for online card payments.
WEEK = 7 * 24 * 3600


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
