"""SendGrid's event webhook without I/O: the sandbox signs what the API verifies, and
what each event says of the address."""

from __future__ import annotations

import json
import time

import pytest

from api.intake.sendgrid import address_flag, event_row, verify
from api.shared.errors import ApiError
from fulfillment.settings import SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY
from sandbox.sendgrid.events import (
    SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    mail_events,
    public_key_of,
    sendgrid_signature,
)

KEY = SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY
MAIL = {
    "personalizations": [{"to": [{"email": "ada@example.com"}, {"email": "x@bounce.example.com"}]}],
    "custom_args": {"dedup_key": "order_1_shipped", "kind": "shipped"},
    "categories": ["shipped"],
}


def test_the_api_in_development_verifies_what_the_sandbox_signs():
    assert public_key_of(KEY) == SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY
    body = b'[{"event":"delivered"}]'
    headers = sendgrid_signature(body, KEY)
    verify(body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER],
           SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    ["body", "timestamp", "stale", "missing"],
)
def test_a_changed_body_or_timestamp_or_a_stale_or_missing_signature_is_refused(change):
    body = b'[{"event":"delivered"}]'
    stamp = int(time.time()) - (600 if change == "stale" else 0)
    headers = sendgrid_signature(body, KEY, timestamp=stamp)
    signature, timestamp = headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
    if change == "body":
        body = b'[{"event":"bounce"}]'
    elif change == "timestamp":
        timestamp = str(stamp + 1)
    elif change == "missing":
        signature = ""
    with pytest.raises(ApiError) as refused:
        verify(body, signature, timestamp, SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY)
    assert (refused.value.status, refused.value.code) == (400, "invalid_signature")


def test_the_sandbox_reports_each_recipient_delivered_or_bounced_with_the_custom_args():
    events = mail_events(MAIL, "msg1", now=1_700_000_000)
    assert [(e["email"], e["event"]) for e in events] == [
        ("ada@example.com", "processed"), ("ada@example.com", "delivered"),
        ("x@bounce.example.com", "processed"), ("x@bounce.example.com", "bounce"),
    ]  # fmt: skip
    assert all(e["dedup_key"] == "order_1_shipped" for e in events)
    assert len({e["sg_event_id"] for e in events}) == 4
    json.dumps(events)  # a batch is JSON


@pytest.mark.parametrize(
    ("kind", "reason", "bounce_type", "flag"),
    [
        ("bounce", "550 no such user", "bounce", "bounced"),
        ("bounce", "421 try later", "blocked", None),
        ("dropped", "Bounced Address", None, "bounced"),
        ("dropped", "Spam Reporting Address", None, "complained"),
        ("dropped", "Unsubscribed Address", None, None),
        ("spamreport", None, None, "complained"),
        ("delivered", None, None, None),
        ("deferred", "try later", None, None),
    ],
)
def test_what_each_event_says_of_the_address(kind, reason, bounce_type, flag):
    assert address_flag(kind, reason=reason, bounce_type=bounce_type) == flag


def test_an_event_without_an_id_or_type_is_left_out_and_odd_fields_are_dropped():
    assert event_row({"event": "delivered"}) is None
    assert event_row({"sg_event_id": "e1"}) is None
    assert event_row(["not", "an", "event"]) is None
    row = event_row({"sg_event_id": "e1", "event": "bounce", "timestamp": "soon",
                     "email": 42, "reason": "x" * 5000, "dedup_key": ["k"]})  # fmt: skip
    assert row == {"sg_event_id": "e1", "event": "bounce", "email": None, "reason": None,
                   "occurred_at": None, "dedup_key": None, "flag": "bounced"}  # fmt: skip
