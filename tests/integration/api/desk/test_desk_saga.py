"""The operator desk's hold, release and resume through a real saga, and a payment
webhook that arrives during a hold: the real app on a real socket, the provider sandbox
(which posts its webhooks to that app), the outbox relay and a Dramatiq worker on a
real Redis, in this process. Outcomes are read from the desk's own detail route, the
database and what the sandbox's Stripe recorded."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pytest
import redis
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.shared.context import TOKENS
from fulfillment.embedded import free_port
from fulfillment.models import OutboxMessage, User, WebhookEvent
from fulfillment.settings import Settings
from tests.support import steps
from tests.support.sandbox import RunningSandbox, running_sandbox
from tests.support.storefront import add_product, bearer, order_body
from workers.broker import NAMESPACE
from workers.relay import OutboxRelay, listen_and_relay
from workers.wiring import build_deps, build_worker_broker

#: Seconds any wait in this file may take before the test fails.
DEADLINE = 40


@dataclass
class Desk:
    client: Any
    sandbox: RunningSandbox
    settings: Settings
    admin: str = ""
    customer: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: list[Callable[[], None]] = field(default_factory=list)
    _broker: Any = None
    _worker: Any = None
    _sessions: Any = None

    def start_workers(self) -> None:
        """The outbox relay and a two-thread worker, as ``fulfillment scheduler`` and
        ``fulfillment worker`` run them."""
        deps = build_deps(self.settings, pool_size=4)
        broker = build_worker_broker(self.settings, deps, prometheus=False)
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
        worker.start()
        relay = threading.Thread(target=listen_and_relay, daemon=True, kwargs={
            "relay": OutboxRelay(deps.sessions.kw["bind"], broker),
            "libpq_url": self.settings.libpq_url, "sweep_seconds": 0.2, "stop": self._stop,
        })  # fmt: skip
        relay.start()
        self._started += [worker.stop, broker.close, lambda: relay.join(timeout=10)]
        self._broker, self._worker, self._sessions = broker, worker, deps.sessions

    def drain(self) -> None:
        """Wait until every outbox row went out and every message on it was handled."""
        deadline = time.monotonic() + DEADLINE
        undelivered = select(func.count()).where(OutboxMessage.delivered_at.is_(None))
        while True:
            with self._sessions() as session:
                if not session.scalar(undelivered):
                    break
            assert time.monotonic() < deadline, "the outbox was not relayed"
            time.sleep(0.05)  # polling, with a deadline
        for queue in self._broker.get_declared_queues():
            self._broker.join(queue, timeout=DEADLINE * 1000)
        self._worker.join()

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/admin/orders/{order_id}", headers=bearer(self.admin))
        assert response.status == 200, await response.text()
        return await response.json()

    async def act(self, order_id: str, action: str) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(f"/v1/admin/orders/{order_id}/{action}",
                                          headers=bearer(self.admin))  # fmt: skip
        return response.status, await response.json()

    async def wait_status(self, order_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE
        while (order := await self.order(order_id))["status"] != status:
            assert time.monotonic() < deadline, f"still {order['status']}, not {status}"
            await asyncio.sleep(0.1)  # polling: the app serves the sandbox's webhooks meanwhile
        return order

    def stop(self) -> None:
        self._stop.set()
        for stop in self._started:
            stop()


def account(db, desk: Desk, role: str) -> str:
    """An access token for a new account (logins have their own tests)."""
    with Session(db) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:12]}@example.com", password_hash="-",
                    first_name="Ada", last_name="Lovelace", role=role)  # fmt: skip
        session.add(user)
        session.flush()
        user_id = user.id
    return desk.client.server.app[TOKENS].issue_access(user_id=user_id, role=role)


@pytest.fixture
async def desk(aiohttp_client, settings: Settings, db, redis_url) -> AsyncIterator[Desk]:
    """The app on a port chosen first, so the sandbox can post its webhooks to it;
    steps are not retried (a step that fails is dead-lettered at once)."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{NAMESPACE}:*"):  # this test's Redis database is its own
        client.delete(key)
    client.close()
    port = free_port()
    with running_sandbox(webhook_url=f"http://127.0.0.1:{port}", tracker_step_seconds=0.1) as box:
        values = settings.model_dump() | box.settings().model_dump(
            include={"stripe_api_base", "sendgrid_host", "easypost_api_base",
                     "stripe_webhook_secret", "easypost_webhook_secret"}
        )  # fmt: skip
        values |= {"worker_max_retries": 0, "worker_min_backoff_ms": 10}
        wired = Settings.model_validate(values)
        app_client = await aiohttp_client(create_app(wired), server_kwargs={"port": port})
        running = Desk(client=app_client, sandbox=box, settings=wired)
        running.admin, running.customer = account(db, running, "admin"), account(db, running,
                                                                                "customer")  # fmt: skip
        try:
            yield running
        finally:
            running.stop()


async def place(desk: Desk, product: uuid.UUID) -> str:
    response = await desk.client.post("/v1/orders", json=order_body((product, 2)),
                                      headers=bearer(desk.customer))  # fmt: skip
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


def stock(db, product: uuid.UUID) -> tuple[int, int]:
    return steps.stock(db, product)


async def test_a_held_order_waits_through_a_worker_run_until_released_then_completes(desk, db):
    # Given a pending order held before any worker saw it
    product = add_product(db, on_hand=5)
    order_id = await place(desk, product)
    status, held = await desk.act(order_id, "hold")
    assert (status, held["status"]) == (200, "on_hold")

    # When the relay and a worker run, and the message that placed it has been handled
    desk.start_workers()
    await asyncio.to_thread(desk.drain)

    # Then nothing happened to it: no stock taken, no charge, still held
    assert (await desk.order(order_id))["status"] == "on_hold"
    assert stock(db, product) == (5, 0)
    assert desk.sandbox.search_payment_intents(order_id) == []

    # When the operator releases it
    status, released = await desk.act(order_id, "release")
    assert (status, released["status"]) == (200, "pending")

    # Then the saga goes on to the end: charged once, shipped, tracked, delivered
    order = await desk.wait_status(order_id, "delivered")
    assert stock(db, product) == (3, 0)
    assert len(desk.sandbox.search_payment_intents(order_id)) == 1
    assert order["shipments"][0]["tracking_code"] and order["shipments"][0]["carrier"]
    assert order["payment"]["status"] is not None and order["payment"]["refunds"] == []
    steps = [event["step"] for event in order["timeline"]]
    assert steps[:3] == ["accept", "admin_hold", "admin_release"]
    assert "reserve_inventory" in steps and "apply_tracking" in steps
    assert {mail["kind"] for mail in order["emails"]} >= {"order_confirmed", "shipped"}


async def test_resume_sends_a_needs_attention_order_back_where_it_stopped(desk, db):
    # Given the carrier refuses every label, so the order's message is dead-lettered
    desk.sandbox.set_faults(easypost={"error_rate": 1.0})
    desk.start_workers()
    product = add_product(db, on_hand=5)
    order_id = await place(desk, product)
    stuck = await desk.wait_status(order_id, "needs_attention")
    assert stuck["attention_from"] == "fulfilling"
    assert [letter["actor"] for letter in stuck["dead_letters"]] == ["reserve_inventory"]

    # When the carrier is back and the operator resumes the order
    desk.sandbox.clear_faults()
    status, resumed = await desk.act(order_id, "resume")

    # Then it goes back to where it stopped and on to the end, charged once
    assert (status, resumed["status"]) == (200, "fulfilling")
    order = await desk.wait_status(order_id, "delivered")
    assert stock(db, product) == (3, 0)
    assert len(desk.sandbox.search_payment_intents(order_id)) == 1
    assert order["dead_letters"] == []  # replayed, not left behind
    (event,) = [e for e in order["timeline"] if e["step"] == "admin_resume"]
    assert event["details"]["dead_letters"] == [letter["id"] for letter in stuck["dead_letters"]]
    # and a second resume is refused: the order no longer needs attention
    status, refused = await desk.act(order_id, "resume")
    assert (status, refused["error"]["code"]) == (409, "order_not_needs_attention")


async def test_a_payment_webhook_that_arrives_during_a_hold_counts_once_released(desk, db):
    # Given an order whose card waits for its owner (3-D Secure), then held
    desk.start_workers()
    product = add_product(db, on_hand=5)
    response = await desk.client.post(
        "/v1/orders", json=order_body((product, 2), payment_method="pm_card_threeDSecure2Required"),
        headers=bearer(desk.customer))  # fmt: skip
    order_id = (await response.json())["id"]
    await desk.wait_status(order_id, "requires_action")
    assert (await desk.act(order_id, "hold"))[0] == 200

    # When the customer authenticates and Stripe's webhook reaches the API during the hold
    (intent,) = desk.sandbox.search_payment_intents(order_id)
    before = processed_payment_events(db, order_id)
    authenticate = f"{desk.sandbox.url}/_sandbox/stripe/payment_intents/{intent['id']}/authenticate"
    requests.post(authenticate, json={"outcome": "complete"}, timeout=10).raise_for_status()
    deadline = time.monotonic() + DEADLINE
    while processed_payment_events(db, order_id) == before:
        assert time.monotonic() < deadline, "the payment webhook never arrived"
        await asyncio.sleep(0.1)
    await asyncio.to_thread(desk.drain)

    # Then the hold kept the order where it was
    held = await desk.order(order_id)
    assert (held["status"], held["held_from"]) == ("on_hold", "requires_action")

    # When it is released, its stage reads the payment back from Stripe and goes on
    assert (await desk.act(order_id, "release"))[1]["status"] == "requires_action"
    order = await desk.wait_status(order_id, "delivered")
    assert stock(db, product) == (3, 0)
    assert [e["step"] for e in order["timeline"]].count("admin_release") == 1


def processed_payment_events(db, order_id: str) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).where(
            WebhookEvent.order_id == uuid.UUID(order_id), WebhookEvent.provider == "stripe",
            WebhookEvent.processed_at.is_not(None)))  # fmt: skip
