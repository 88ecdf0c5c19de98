"""Webhooks as the internet delivers them: twice, out of order, late, stale or forged.
A duplicate is a 200 that changes nothing; an event that arrives after a later one never
moves an order back; a stale or forged signature is a 400 that stores nothing. The
sandbox's trackers are stopped (``--tracker-step-seconds 0``), so every tracker move in
this test is one it asks for through the sandbox's control API, and EasyPost's signed
event for it is what reaches the API."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import Order, Shipment, WebhookEvent
from fulfillment.settings import SANDBOX_EASYPOST_WEBHOOK_SECRET, SANDBOX_STRIPE_WEBHOOK_SECRET
from integrations.webhooks import STRIPE_TOLERANCE
from sandbox.webhooks import easypost_signature, stripe_signature
from tests.support.chaos import backward_moves, place, verify_clean
from tests.support.storefront import add_product
from tests.support.system import COMMANDS, running_system, wait_until

STILL_TRACKERS = {"sandbox": [*COMMANDS["sandbox"], "--tracker-step-seconds", "0"]}


@pytest.fixture
def system(tmp_path, database_url, db):
    with running_system(tmp_path, database_url=database_url, engine=db,
                        commands=STILL_TRACKERS) as running:  # fmt: skip
        yield running


class Webhooks:
    """Posts events to the API as Stripe and EasyPost sign them (or not)."""

    def __init__(self, system) -> None:
        self.system = system

    def stripe(self, event: dict, *, secret=SANDBOX_STRIPE_WEBHOOK_SECRET, age: int = 0):
        body = _body(event)
        signature = stripe_signature(body, secret, timestamp=int(time.time()) - age)
        return self.post("stripe", body, {"Stripe-Signature": signature})

    def easypost(self, event: dict, *, secret=SANDBOX_EASYPOST_WEBHOOK_SECRET):
        body = _body(event)
        return self.post("easypost", body, {"X-Hmac-Signature": easypost_signature(body, secret)})

    def post(self, provider: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(f"{self.system.api_url}/v1/webhooks/{provider}", data=body,
                             headers={"Content-Type": "application/json", **headers}, timeout=10)  # fmt: skip

    def sent(self, provider: str) -> list[dict[str, Any]]:
        """The deliveries the sandbox made, each with the event it sent."""
        response = requests.get(f"{self.system.sandbox_url}/_sandbox/webhooks",
                                params={"provider": provider}, timeout=10)  # fmt: skip
        return response.json()["deliveries"]

    def move_tracker(self, tracker_id: str, status: str) -> None:
        """The parcel moves; EasyPost tells the API, and the delivery lands (2xx)."""
        requests.post(f"{self.system.sandbox_url}/_sandbox/trackers/{tracker_id}",
                      json={"status": status}, timeout=10).raise_for_status()  # fmt: skip
        wait_until(lambda: [d for d in self.sent("easypost")
                            if d["event"]["result"]["id"] == tracker_id
                            and d["event"]["result"]["status"] == status
                            and d["status"] == "delivered"],
                   timeout=30, what=f"{status} of {tracker_id} delivered")  # fmt: skip


def _body(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def statuses(engine) -> dict[str, str]:
    with Session(engine) as session:
        return {str(i): s for i, s in session.execute(select(Order.id, Order.status))}


def stored_events(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent))


def trackers(engine) -> dict[str, tuple[str, str]]:
    """Order id -> (tracker id, tracking code)."""
    with Session(engine) as session:
        rows = session.execute(
            select(Shipment.order_id, Shipment.tracker_id, Shipment.tracking_code)
        )
        return {str(order): (tracker, code) for order, tracker, code in rows}


def wait_status(system, order_id: str, status: str) -> None:
    wait_until(lambda: statuses(system.engine)[order_id] == status, timeout=60,
               what=f"order {order_id} {status}", on_fail=system.logs)  # fmt: skip


def payment_event(hooks: Webhooks, order_id: str) -> dict:
    (event,) = {d["event"]["id"]: d["event"] for d in hooks.sent("stripe")
                if d["event"]["type"] == "payment_intent.succeeded"
                and d["event"]["data"]["object"]["metadata"].get("order_id") == order_id}.values()  # fmt: skip
    return event


@pytest.mark.slow
def test_duplicate_late_stale_and_forged_webhooks_never_move_an_order_back(system, db):
    # Given four paid orders with their labels bought, parcels not yet moving
    product = add_product(db, on_hand=50)
    load = asyncio.run(place([system.api_url], product, ["pm_card_visa"] * 4))
    wait_until(lambda: set(statuses(db).values()) == {"shipped"}, timeout=60,
               what="four orders shipped", on_fail=system.logs)  # fmt: skip
    hooks = Webhooks(system)
    early, refunded, forged_for, last = sorted(load.accepted)
    parcels = trackers(db)

    # When a parcel's "delivered" arrives before its "in_transit"
    hooks.move_tracker(parcels[early][0], "delivered")
    wait_status(system, early, "delivered")
    hooks.move_tracker(parcels[early][0], "in_transit")
    # Then the late event is taken (2xx) and the order stays delivered
    assert statuses(db)[early] == "delivered"

    # When a parcel goes back to its sender (refund), and then Stripe's
    # payment_intent.succeeded for that order comes again, re-signed, and under a new id
    hooks.move_tracker(parcels[refunded][0], "return_to_sender")
    wait_status(system, refunded, "refunded")
    paid = payment_event(hooks, refunded)
    again = hooks.stripe(paid)
    late = hooks.stripe({**paid, "id": f"evt_{uuid.uuid4().hex[:24]}"})
    # Then both are 200, the first a duplicate, and the order stays refunded
    assert (again.status_code, again.json()["duplicate"]) == (200, True), again.text
    assert (late.status_code, late.json()["duplicate"]) == (200, False), late.text
    assert statuses(db)[refunded] == "refunded"

    # When every event the providers sent is delivered once more
    before = (statuses(db), stored_events(db))
    replays = [hooks.stripe(d["event"]) for d in hooks.sent("stripe")]
    replays += [hooks.easypost(d["event"]) for d in hooks.sent("easypost")]
    # Then each is a 200 duplicate that changes nothing
    assert {(r.status_code, r.json()["duplicate"]) for r in replays} == {(200, True)}
    assert (statuses(db), stored_events(db)) == before

    # When a "delivered" for a shipped parcel comes with a forged signature, or a
    # tampered body, and a Stripe event comes signed too long ago or with another secret
    tracker_id, code = parcels[forged_for]
    delivered = next(d["event"] for d in hooks.sent("easypost")
                     if d["event"]["result"]["status"] == "delivered")  # fmt: skip
    forged = {**delivered, "id": f"evt_{uuid.uuid4().hex[:24]}",
              "result": {**delivered["result"], "id": tracker_id, "tracking_code": code}}  # fmt: skip
    body = _body(forged)
    tampered = body.replace(code.encode(), parcels[last][1].encode())
    fresh_paid = {**paid, "id": f"evt_{uuid.uuid4().hex[:24]}"}
    refused = [
        hooks.easypost(forged, secret="not-the-secret"),
        hooks.post("easypost", tampered,
                    {"X-Hmac-Signature": easypost_signature(body, SANDBOX_EASYPOST_WEBHOOK_SECRET)}),
        hooks.stripe(fresh_paid, age=STRIPE_TOLERANCE + 60),
        hooks.stripe(fresh_paid, secret="whsec_forged"),
        hooks.post("stripe", _body(fresh_paid), {}),
    ]  # fmt: skip
    # Then each is a 400 invalid_signature, and nothing is stored or moved
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {
        (400, "invalid_signature")
    }, [r.text for r in refused]
    assert (statuses(db), stored_events(db)) == before
    # while the same "delivered", signed with the real secret, is taken
    assert hooks.easypost(forged).status_code == 200
    wait_status(system, forged_for, "delivered")

    # And once the last parcel arrives, every order is terminal and verify is clean
    hooks.move_tracker(parcels[last][0], "delivered")
    assert system.wait_all_terminal(expected=4, timeout=60) == {"delivered": 3, "refunded": 1}
    assert backward_moves(db) == []
    verify_clean(system)
