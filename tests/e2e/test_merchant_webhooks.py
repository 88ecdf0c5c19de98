"""Merchant webhooks through the whole system: orders placed over HTTP and carried
through the saga by real worker processes, each milestone posted by the delivery queue
to a real receiver on loopback, a failed delivery retried by the scheduler."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.accounts import upsert_admin
from fulfillment.merchant_events import MILESTONES
from fulfillment.models import OrderEvent
from tests.support.merchant import Receiver, documented_verify
from tests.support.storefront import PASSWORD, add_product
from tests.support.system import wait_until
from tests.support.traffic import place_orders

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"
#: Quick retries: the first attempt fails, the scheduler sends it again within a second.
QUICK = {"WEBHOOK_RETRY_MIN_SECONDS": "0.2", "WEBHOOK_RETRY_MAX_SECONDS": "1",
         "WEBHOOK_SWEEP_SECONDS": "0.2"}  # fmt: skip
#: Event type of each order status that is a milestone.
TYPE_OF = {m.status: m.type for m in MILESTONES if m.status}


def admin_headers(system) -> dict[str, str]:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    with Session(system.engine) as session, session.begin():
        upsert_admin(session, email=email, password=PASSWORD)
    login = requests.post(f"{system.api_url}/v1/auth/login", timeout=30,
                          json={"email": email, "password": PASSWORD})  # fmt: skip
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def milestones_of(engine, order_id: str) -> list[str]:
    """The event types an order's timeline calls for, in order."""
    with Session(engine) as session:
        moves = session.scalars(select(OrderEvent.to_status)
                                .where(OrderEvent.order_id == uuid.UUID(order_id),
                                       OrderEvent.from_status != OrderEvent.to_status)
                                .order_by(OrderEvent.id)).all()  # fmt: skip
    return ["order.created", *(TYPE_OF[status] for status in moves if status in TYPE_OF)]


@pytest.mark.slow
@pytest.mark.system_env(**QUICK)
def test_the_merchant_receives_every_milestone_once_in_sequence_and_signed(system, db):
    # Given a merchant's receiver, registered through the API, that fails its first answer
    admin = admin_headers(system)
    with Receiver() as receiver:
        receiver.fail_next(500)
        created = requests.post(f"{system.api_url}/v1/admin/webhook-endpoints", headers=admin,
                                json={"url": receiver.url, "events": ["*"]}, timeout=30)  # fmt: skip
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]

        # When two orders are placed, one paid and delivered, one declined
        product = add_product(db, on_hand=10)
        orders = asyncio.run(place_orders(system.api_url, product, [VISA, DECLINED]))
        assert system.wait_all_terminal(expected=2) == {"delivered": 1, "cancelled": 1}
        expected = {order_id: milestones_of(db, order_id) for order_id in orders}
        total = sum(len(types) for types in expected.values())

        def distinct() -> dict[str, dict]:
            return {event["id"]: event for event in receiver.events()}

        wait_until(lambda: len(distinct()) >= total, timeout=60, what=f"{total} events",
                   on_fail=lambda: f"{receiver.events()}\n{system.logs()}")  # fmt: skip

    # Then each milestone arrived once (after de-duplicating by id), signed, in sequence
    assert len(distinct()) == total
    assert all(documented_verify()(r.body, r.signature, secret) for r in receiver.received)
    by_order: dict[str, list[dict]] = defaultdict(list)
    for event in distinct().values():
        by_order[event["order_id"]].append(event)
    for order_id, events in by_order.items():
        events.sort(key=lambda e: e["sequence"])
        assert [e["type"] for e in events] == expected[order_id]
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["data"]["object"]["status"] in ("delivered", "cancelled")
    assert {orders[o] for o, events in by_order.items()
            if events[-1]["type"] == "order.delivered"} == {VISA}  # fmt: skip
    # and the one answered 500 came again: the attempt log shows both tries
    assert len(receiver.received) == total + 1
    endpoint = created.json()["id"]
    log = requests.get(f"{system.api_url}/v1/admin/webhook-endpoints/{endpoint}/deliveries",
                       params={"limit": 100}, headers=admin, timeout=30).json()  # fmt: skip
    outcomes = [(a["outcome"], a["response_code"]) for a in log["items"]]
    assert outcomes.count(("failed", 500)) == 1 and outcomes.count(("delivered", 200)) == total
