"""A stranger's signature header, however malformed, is a ``400 invalid_signature`` on
every provider route: non-ASCII text (the SDKs' ``hmac.compare_digest`` raises
``TypeError`` on it), latin-1 bytes, a lone surrogate, nothing, a header near the
parser's limit, numbers too long to be a time. It is counted as an invalid signature and
nothing is stored. Where aiohttp's own parser refuses the request first (a NUL, a line
past 8,190 bytes), its plain 400 is the answer and the app never sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from sandbox.sendgrid.events import (
    SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY,
    sendgrid_signature,
)
from sandbox.webhooks import stripe_signature
from tests.support.rawhttp import fingerprint, raw_post

E_ACUTE = "é".encode()  # two UTF-8 bytes
LATIN_1 = b"\xe9"  # é in latin-1: not UTF-8 at all
SURROGATE = b"\xed\xa0\x80"  # a lone surrogate, UTF-8-encoded as some encoders do
ARABIC_DIGITS = ("\u0661\u0667" + "\u0660" * 8).encode()  # int() reads these as 1700000000
HUGE = b"a" * 8000  # under aiohttp's 8,190-byte line limit: the app sees it
PAST_LIMIT = b"a" * 9000  # over it: aiohttp's parser answers

STRIPE_EVENT = json.dumps({"id": "evt_stranger", "object": "event",
                           "type": "payment_intent.succeeded",
                           "data": {"object": {"id": "pi_1", "metadata": {}}}}).encode()  # fmt: skip
TRACKER_EVENT = json.dumps({"id": "evt_stranger", "object": "Event",
                            "description": "tracker.updated",
                            "result": {"id": "trk_1", "status": "delivered",
                                       "tracking_code": "EZ1"}}).encode()  # fmt: skip
MAIL_EVENTS = json.dumps([{"sg_event_id": "sg_stranger", "event": "bounce",
                           "email": "a@example.com", "timestamp": 1}]).encode()  # fmt: skip

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Stranger:
    """One delivery: the route's provider, its body, and its signature headers built
    from the real secrets (so only the hostile part is wrong)."""

    provider: str
    body: bytes
    headers: Callable[[object], Headers]
    #: True where aiohttp's HTTP parser refuses the request before the app sees it.
    parser: bool = False


def stripe_header(value: bytes) -> Callable[[object], Headers]:
    return lambda settings: [(b"Stripe-Signature", value)]


def stripe_valid_but(replace: Callable[[bytes], bytes]) -> Callable[[object], Headers]:
    def headers(settings) -> Headers:
        secret = settings.stripe_webhook_secret.get_secret_value()
        return [(b"Stripe-Signature", replace(stripe_signature(STRIPE_EVENT, secret).encode()))]

    return headers


def easypost_header(value: bytes) -> Callable[[object], Headers]:
    return lambda settings: [(b"X-Hmac-Signature", value)]


def sendgrid_headers(*, signature: bytes | None = None, timestamp: bytes | None = None):
    def headers(settings) -> Headers:
        signed = sendgrid_signature(MAIL_EVENTS, SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY)
        sig, stamp = (v.encode() for v in signed.values())
        return [(b"X-Twilio-Email-Event-Webhook-Signature", sig if signature is None else signature),
                (b"X-Twilio-Email-Event-Webhook-Timestamp", stamp if timestamp is None else timestamp)]  # fmt: skip

    return headers


def fresh(value: bytes) -> bytes:
    return f"t={int(time.time())},v1=".encode() + value


CASES = {
    "stripe-v1-non-ascii": Stranger("stripe", STRIPE_EVENT, stripe_header(b"t=1,v1=" + E_ACUTE)),
    "stripe-v1-non-ascii-fresh": Stranger("stripe", STRIPE_EVENT, stripe_header(fresh(E_ACUTE))),
    "stripe-v1-latin-1": Stranger("stripe", STRIPE_EVENT, stripe_header(fresh(LATIN_1))),
    "stripe-v1-surrogate": Stranger("stripe", STRIPE_EVENT, stripe_header(fresh(SURROGATE))),
    "stripe-v1-non-ascii-beside-a-valid-one": Stranger(
        "stripe", STRIPE_EVENT, stripe_valid_but(lambda v: v + b",v1=" + E_ACUTE)),
    "stripe-t-arabic-digits": Stranger(
        "stripe", STRIPE_EVENT, stripe_valid_but(lambda v: b"t=" + ARABIC_DIGITS + v[12:])),
    "stripe-t-5000-digits": Stranger("stripe", STRIPE_EVENT,
                                     stripe_header(b"t=" + b"9" * 5000 + b",v1=ab")),
    "stripe-t-non-ascii": Stranger("stripe", STRIPE_EVENT, stripe_header(b"t=" + E_ACUTE + b",v1=ab")),
    "stripe-empty": Stranger("stripe", STRIPE_EVENT, stripe_header(b"")),
    "stripe-huge": Stranger("stripe", STRIPE_EVENT, stripe_header(fresh(HUGE))),
    "stripe-nul": Stranger("stripe", STRIPE_EVENT, stripe_header(fresh(b"\x00")), parser=True),
    "stripe-past-the-parser-limit": Stranger("stripe", STRIPE_EVENT,
                                             stripe_header(fresh(PAST_LIMIT)), parser=True),
    "easypost-non-ascii": Stranger("easypost", TRACKER_EVENT, easypost_header(E_ACUTE)),
    "easypost-scheme-non-ascii": Stranger(
        "easypost", TRACKER_EVENT, easypost_header(b"hmac-sha256-hex=" + E_ACUTE * 32)),
    "easypost-latin-1": Stranger("easypost", TRACKER_EVENT, easypost_header(LATIN_1)),
    "easypost-surrogate": Stranger("easypost", TRACKER_EVENT, easypost_header(SURROGATE)),
    "easypost-empty": Stranger("easypost", TRACKER_EVENT, easypost_header(b"")),
    "easypost-huge": Stranger("easypost", TRACKER_EVENT,
                              easypost_header(b"hmac-sha256-hex=" + HUGE)),
    "easypost-nul": Stranger("easypost", TRACKER_EVENT, easypost_header(b"\x00"), parser=True),
    "sendgrid-signature-non-ascii": Stranger("sendgrid", MAIL_EVENTS,
                                             sendgrid_headers(signature=E_ACUTE)),
    "sendgrid-signature-latin-1": Stranger("sendgrid", MAIL_EVENTS,
                                           sendgrid_headers(signature=LATIN_1)),
    "sendgrid-signature-empty": Stranger("sendgrid", MAIL_EVENTS, sendgrid_headers(signature=b"")),
    "sendgrid-signature-huge": Stranger("sendgrid", MAIL_EVENTS, sendgrid_headers(signature=HUGE)),
    "sendgrid-timestamp-non-ascii": Stranger("sendgrid", MAIL_EVENTS,
                                             sendgrid_headers(timestamp=E_ACUTE)),
    "sendgrid-timestamp-arabic-digits": Stranger("sendgrid", MAIL_EVENTS,
                                                 sendgrid_headers(timestamp=ARABIC_DIGITS)),
    "sendgrid-timestamp-400-digits": Stranger("sendgrid", MAIL_EVENTS,
                                              sendgrid_headers(timestamp=b"9" * 400)),
    "sendgrid-timestamp-5000-digits": Stranger("sendgrid", MAIL_EVENTS,
                                               sendgrid_headers(timestamp=b"9" * 5000)),
    "sendgrid-timestamp-latin-1": Stranger("sendgrid", MAIL_EVENTS,
                                           sendgrid_headers(timestamp=b"1" + LATIN_1)),
    "sendgrid-signature-nul": Stranger("sendgrid", MAIL_EVENTS,
                                       sendgrid_headers(signature=b"\x00"), parser=True),
}  # fmt: skip


def refused(provider: str) -> float:
    value = REGISTRY.get_sample_value(
        "fulfillment_webhooks_total", {"provider": provider, "outcome": "invalid_signature"}
    )
    return value or 0.0


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_malformed_signature_header_is_an_invalid_signature_and_stores_nothing(
    client, db, settings, case: Stranger
):
    # Given the database as it stands, and the count of refused deliveries
    before, counted = fingerprint(db), refused(case.provider)

    # When a stranger posts to the provider's route with a malformed signature header
    status, answer = await raw_post(client, f"/v1/webhooks/{case.provider}",
                                    headers=case.headers(settings), body=case.body)  # fmt: skip

    # Then it is a 400; from the app, an invalid signature in the error shape, counted
    assert status == 400, answer
    if not case.parser:
        assert json.loads(answer)["error"]["code"] == "invalid_signature", answer
        assert refused(case.provider) == counted + 1
    # and nothing is stored
    assert fingerprint(db) == before
