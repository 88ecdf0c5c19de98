"""Webhook signature checks: what the API accepts from Stripe and EasyPost. No I/O."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from integrations.errors import InvalidSignature
from integrations.webhooks import verify_easypost_webhook, verify_stripe_webhook
from sandbox.webhooks import easypost_signature, stripe_signature

SECRET = "whsec_unit"
EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "payment_intent.succeeded",
    "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}},
}
TRACKER_EVENT = {
    "id": "evt_2",
    "object": "Event",
    "description": "tracker.updated",
    "result": {"id": "trk_1", "object": "Tracker", "status": "delivered"},
}


def body(event: dict) -> bytes:
    return json.dumps(event).encode()


def test_a_stripe_signed_event_is_accepted():
    payload = body(EVENT)
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET)

    event = verify_stripe_webhook(payload, header, SECRET)

    event_id, event_type, data = event
    assert (event_id, event_type) == ("evt_1", "payment_intent.succeeded")
    assert data == EVENT["data"]["object"]


def test_the_sandbox_signs_exactly_as_stripe_documents():
    payload, stamp = body(EVENT), int(time.time())
    expected = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET, stamp)
    assert stripe_signature(payload, SECRET, timestamp=stamp) == expected


@pytest.mark.parametrize(
    "tamper",
    [
        lambda payload, header: (payload, stripe_signature(payload, "whsec_other")),
        lambda payload, header: (payload.replace(b"succeeded", b"failed"), header),
        lambda payload, header: (payload, header.replace("v1=", "v0=")),
        lambda payload, header: (payload, ""),
        lambda payload, header: (payload, "garbage"),
    ],
    ids=["wrong-secret", "altered-body", "other-scheme", "no-header", "malformed-header"],
)
def test_a_forged_stripe_event_is_rejected(tamper):
    payload = body(EVENT)
    forged_payload, forged_header = tamper(payload, stripe_signature(payload, SECRET))
    with pytest.raises(InvalidSignature):
        verify_stripe_webhook(forged_payload, forged_header, SECRET)


def test_a_stale_stripe_event_is_rejected_unless_the_tolerance_allows_it():
    payload = body(EVENT)
    stale = stripe_signature(payload, SECRET, timestamp=int(time.time()) - 600)

    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_stripe_webhook(payload, stale, SECRET)
    assert verify_stripe_webhook(payload, stale, SECRET, tolerance=900).id == "evt_1"


def test_an_easypost_signed_event_is_accepted_whatever_the_header_case():
    payload = body(TRACKER_EVENT)
    signature = easypost_signature(payload, "easypost-secret")

    for headers in ({"X-Hmac-Signature": signature}, {"x-hmac-signature": signature}):
        event = verify_easypost_webhook(payload, headers, "easypost-secret")
        assert event == ("evt_2", "tracker.updated", TRACKER_EVENT["result"])


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hmac-Signature": "hmac-sha256-hex=" + "0" * 64},
        {"X-Hmac-Signature": easypost_signature(b"{}", "easypost-secret")},
        {"X-Hmac-Signature": easypost_signature(body(TRACKER_EVENT), "other-secret")},
        {},
    ],
    ids=["zeros", "other-body", "wrong-secret", "no-header"],
)
def test_a_forged_easypost_event_is_rejected(headers):
    with pytest.raises(InvalidSignature):
        verify_easypost_webhook(body(TRACKER_EVENT), headers, "easypost-secret")


def test_an_easypost_signature_over_something_that_is_not_an_event_is_rejected():
    payload = b"not json"
    headers = {"X-Hmac-Signature": easypost_signature(payload, "easypost-secret")}
    with pytest.raises(InvalidSignature):
        verify_easypost_webhook(payload, headers, "easypost-secret")
