"""The sandbox keeps what it holds in a file: after a restart, earlier payments can be
refunded, replayed keys answer as before, and the mail and parcels are still there."""

from __future__ import annotations

from pathlib import Path

import requests
import stripe

from sandbox import SandboxConfig, SandboxThread

AUTH = {"Authorization": "Bearer sk_test_sandbox"}
MAIL = {
    "personalizations": [{"to": [{"email": "ada@example.com"}], "custom_args": {"kind": "x"}}],
    "from": {"email": "shop@example.com"},
    "subject": "Hello",
    "content": [{"type": "text/plain", "value": "hi"}],
}
ADDRESS = {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "state": "IL",
           "zip": "62701", "country": "US"}  # fmt: skip


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", base_addresses={"api": url},
                               max_network_retries=0)  # fmt: skip


def pay(client: stripe.StripeClient):
    params = {"amount": 2500, "currency": "usd", "payment_method_types": ["card"],
              "payment_method": "pm_card_visa", "confirm": True,
              "metadata": {"order_id": "order-1"}}  # fmt: skip
    return client.v1.payment_intents.create(params, {"idempotency_key": "order-1:charge"})


def ship(url: str) -> dict:
    body = {"shipment": {"to_address": ADDRESS, "from_address": ADDRESS,
                         "parcel": {"weight": 10}, "reference": "order-1"}}  # fmt: skip
    shipment = requests.post(f"{url}/easypost/v2/shipments", json=body, auth=("EZTK_sandbox", ""),
                             timeout=5).json()  # fmt: skip
    rate = {"rate": {"id": shipment["rates"][0]["id"]}}
    bought = requests.post(f"{url}/easypost/v2/shipments/{shipment['id']}/buy", json=rate,
                           auth=("EZTK_sandbox", ""), timeout=5)  # fmt: skip
    assert bought.status_code == 200, bought.text
    return bought.json()


def test_a_payment_made_before_a_restart_is_refunded_after_it(tmp_path: Path):
    config = SandboxConfig(state_path=str(tmp_path / "sandbox.sqlite3"), tracker_step_seconds=0)

    # Given a payment, a mail and a parcel taken by the sandbox
    with SandboxThread(config) as sandbox:
        intent = pay(stripe_client(sandbox.url))
        sent = requests.post(f"{sandbox.url}/sendgrid/v3/mail/send", json=MAIL,
                             headers={"Authorization": "Bearer SG.sandbox"}, timeout=5)  # fmt: skip
        assert sent.status_code == 202, sent.text
        parcel = ship(sandbox.url)

    # When it is restarted on the same file
    with SandboxThread(config) as sandbox:
        client = stripe_client(sandbox.url)
        # Then the payment is there, found as before, and can be refunded
        found = client.v1.payment_intents.search({"query": "metadata['order_id']:'order-1'"})
        assert [i.id for i in found.data] == [intent.id]
        refund = client.v1.refunds.create({"payment_intent": intent.id})
        assert refund.status == "succeeded" and refund.amount == 2500
        # the charging request's key replays the stored answer, charging nothing twice
        assert pay(client).id == intent.id
        assert len(client.v1.payment_intents.list().data) == 1
        # and the mail and the parcel are still readable
        messages = requests.get(f"{sandbox.url}/sendgrid/v3/messages", headers=AUTH,
                                timeout=5).json()["messages"]  # fmt: skip
        assert [m["to_email"] for m in messages] == ["ada@example.com"]
        trackers = requests.get(f"{sandbox.url}/easypost/v2/trackers",
                                auth=("EZTK_sandbox", ""), timeout=5).json()["trackers"]  # fmt: skip
        assert [t["id"] for t in trackers] == [parcel["tracker"]["id"]]


def test_a_reset_forgets_the_file_too(tmp_path: Path):
    config = SandboxConfig(state_path=str(tmp_path / "sandbox.sqlite3"))
    with SandboxThread(config) as sandbox:
        pay(stripe_client(sandbox.url))
        requests.post(f"{sandbox.url}/_sandbox/reset", json={}, timeout=5).raise_for_status()
    with SandboxThread(config) as sandbox:
        assert stripe_client(sandbox.url).v1.payment_intents.list().data == []
