"""Provider webhooks received: a signed Stripe or EasyPost event is stored once,
forgeries and events the database could not hold are refused and store nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from tests.support.fakes import PROCESSING_METHOD
from tests.support.provider_webhooks import (
    easypost_headers,
    stored_events,
    stripe_event,
    stripe_headers,
    tracker_event,
    webhook_counts,
)
from tests.support.shipments import the_shipment
from tests.support.steps import given_order, outbox, status, transitions


async def test_a_stripe_event_is_stored_once_and_forgeries_are_refused(
    client, deps, engine, settings
):
    # Given an order waiting for its processing payment
    order_id, _ = given_order(deps, engine, at=S.PAYMENT_PENDING, payment_method=PROCESSING_METHOD)
    secret = settings.stripe_webhook_secret.get_secret_value()
    payload = stripe_event("payment_intent.succeeded", order_id=order_id)
    forged = stripe_event("payment_intent.succeeded", order_id=order_id)
    before = await webhook_counts(client, "stripe")

    # When Stripe delivers a signed event twice, and someone posts a forged and a stale one
    post = client.post
    first = await post("/v1/webhooks/stripe", data=payload, headers=stripe_headers(payload, secret))
    again = await post("/v1/webhooks/stripe", data=payload, headers=stripe_headers(payload, secret))
    fake = await post("/v1/webhooks/stripe", data=forged,
                      headers=stripe_headers(forged, "whsec_guessed"))  # fmt: skip
    stale = await post("/v1/webhooks/stripe", data=forged,
                       headers=stripe_headers(forged, secret, at=int(time.time()) - 301))  # fmt: skip

    # Then the event is accepted once and answered as a duplicate the second time
    assert (first.status, await first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status, await again.json()) == (200, {"received": True, "duplicate": True})
    # and the forgeries are refused
    for refused in (fake, stale):
        assert refused.status == 400
        assert (await refused.json())["error"]["code"] == "invalid_signature"
    # and one event is stored, unprocessed, with one message to process it (the order
    # waits on it)
    (event,) = stored_events(engine, "stripe")
    assert event.event_id == json.loads(payload)["id"] and str(event.order_id) == order_id
    assert event.processed_at is None
    assert outbox(engine, m.PROCESS_WEBHOOK) == 1
    assert outbox(engine, m.PROCESS_WEBHOOK, event_id=str(event.id)) == 1
    # and the metrics count each outcome
    after = await webhook_counts(client, "stripe")
    assert after - before == Counter({"accepted": 1, "duplicate": 1, "invalid_signature": 2})


async def test_a_signed_event_the_database_could_not_hold_is_refused_and_stores_nothing(
    client, engine, settings
):
    # Given signed events with an id longer than any provider's, a JSON array, and a body
    # that is not UTF-8
    secret = settings.stripe_webhook_secret.get_secret_value()
    long_id = json.loads(stripe_event("payment_intent.succeeded", order_id=str(uuid.uuid4())))
    long_id["id"] = "evt_" + "x" * 300
    bodies = [json.dumps(long_id).encode(), b"[1, 2]",
              json.dumps({"id": "evt_1", "type": "x"}).encode("utf-16")]  # fmt: skip

    # When each is delivered
    answers = [
        await client.post("/v1/webhooks/stripe", data=body, headers=stripe_headers(body, secret))
        for body in bodies
    ]

    # Then each is a 400 with a code, and nothing is stored or queued
    for answer in answers:
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] in {"invalid_event", "invalid_signature"}
    assert stored_events(engine, "stripe") == []
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0


async def test_an_easypost_event_is_stored_once_and_forgeries_are_refused(
    client, deps, engine, carrier, settings
):
    # Given a shipped order
    order_id, _ = given_order(deps, engine, at=S.SHIPPED)
    code = carrier.labels[order_id].tracking_code
    secret = settings.easypost_webhook_secret.get_secret_value()
    payload = tracker_event(tracking_code=code, tracker_status="in_transit")
    forged = tracker_event(tracking_code=code, tracker_status="delivered")
    before = await webhook_counts(client, "easypost")

    # When EasyPost delivers a signed event twice, and a forged and an unsigned one arrive
    post = client.post
    first = await post("/v1/webhooks/easypost", data=payload,
                       headers=easypost_headers(payload, secret))  # fmt: skip
    again = await post("/v1/webhooks/easypost", data=payload,
                       headers=easypost_headers(payload, secret))  # fmt: skip
    fake = await post("/v1/webhooks/easypost", data=forged,
                      headers=easypost_headers(forged, "guessed"))  # fmt: skip
    unsigned = await post("/v1/webhooks/easypost", data=forged,
                          headers={"Content-Type": "application/json"})  # fmt: skip

    # Then it is stored once and applied once, where it is stored, with no message, and
    # the forgeries are refused and change nothing
    assert (first.status, await first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status, await again.json()) == (200, {"received": True, "duplicate": True})
    for refused in (fake, unsigned):
        assert refused.status == 400
        assert (await refused.json())["error"]["code"] == "invalid_signature"
    (event,) = stored_events(engine, "easypost")
    assert (event.event_id, event.event_type) == (json.loads(payload)["id"], "tracker.updated")
    assert event.processed_at is not None and str(event.order_id) == order_id
    assert status(engine, order_id) == S.IN_TRANSIT
    assert transitions(engine, order_id, S.IN_TRANSIT) == 1
    assert transitions(engine, order_id, S.DELIVERED) == 0
    with Session(engine) as session:
        assert the_shipment(session, uuid.UUID(order_id)).tracker_status == "in_transit"
    assert outbox(engine, m.PROCESS_WEBHOOK) == 0
    after = await webhook_counts(client, "easypost")
    assert after - before == Counter({"accepted": 1, "duplicate": 1, "invalid_signature": 2})
