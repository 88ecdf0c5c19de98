"""Outbound webhooks on the real API, the real orders trigger and the real delivery step,
posting over HTTP to a real receiver on loopback. Retries are made due by hand here;
``tests/e2e/test_merchant_webhooks.py`` runs the whole system with its scheduler."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from api.app import create_app
from api.shared.context import SETTINGS
from api.shared.tokens import TokenService
from fulfillment.db import sync_session_factory
from fulfillment.merchant_events import EVENT_TYPES
from fulfillment.models import (
    MerchantEvent,
    Notification,
    OutboxMessage,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from pipelines.deps import Deps
from pipelines.merchant_webhooks.deliver import deliver_webhook
from tests.support.merchant import Receiver, documented_verify
from tests.support.storefront import add_product, bearer, order_body
from workers.webhook_dispatch import EVENT_RETENTION_DAYS, clean_up, dispatch_due

ENDPOINTS = "/v1/admin/webhook-endpoints"
verify = documented_verify()


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def signed_in(db, settings, role: str) -> dict[str, str]:
    """An account written straight to the database and its access token: no password
    hashing (a second each on this machine), which these tests do not exercise."""
    with Session(db) as session, session.begin():
        user = User(email=f"{role}-{uuid.uuid4().hex[:8]}@example.com", password_hash="unused",
                    first_name="Ada", last_name="Lovelace", role=role)  # fmt: skip
        session.add(user)
        session.flush()
        user_id = user.id
    tokens = TokenService(secret=settings.jwt_secret.get_secret_value(), access_ttl_seconds=900)
    return bearer(tokens.issue_access(user_id=user_id, role=role))


@pytest.fixture
def admin(db, settings) -> dict[str, str]:
    return signed_in(db, settings, "admin")


def step_deps(db, settings, **overrides) -> Deps:
    return Deps(sessions=sync_session_factory(db), payments=None, mailer=None, carrier=None,
                settings=settings.model_copy(update=overrides))  # fmt: skip


async def register(client, admin, url: str, events=("*",)) -> dict:
    response = await client.post(ENDPOINTS, json={"url": url, "events": list(events)},
                                 headers=admin)  # fmt: skip
    assert response.status == 201, await response.text()
    return await response.json()


async def place_order(client, db) -> str:
    customer = signed_in(db, client.app[SETTINGS], "customer")
    product = add_product(db)
    response = await client.post("/v1/orders", json=order_body((product, 2)), headers=customer)
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


def deliveries(db, **where) -> list[WebhookDelivery]:
    with Session(db) as session:
        return list(session.scalars(select(WebhookDelivery).filter_by(**where)
                                    .order_by(WebhookDelivery.created_at)))  # fmt: skip


def set_status(db, order_id: str, status: str) -> None:
    """Moves the order as every writer does: its row and its timeline, in one commit
    (the trigger reads the timeline)."""
    with db.begin() as conn:
        conn.execute(text("""
            WITH old AS (SELECT status FROM orders WHERE id = :id FOR UPDATE),
            moved AS (UPDATE orders SET status = :s WHERE id = :id)
            INSERT INTO order_events (order_id, step, from_status, to_status)
            SELECT :id, 'test', old.status, :s FROM old
        """), {"s": status, "id": order_id})  # fmt: skip


async def run_step(deps: Deps, delivery_id) -> str:
    return await asyncio.to_thread(deliver_webhook, deps, str(delivery_id))


# --- the admin routes -------------------------------------------------------------------


async def test_an_admin_registers_an_endpoint_and_sees_its_secret_only_at_creation(client, admin):
    created = await register(client, admin, "https://merchant.example.com/hooks", ["order.paid"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["order.paid"] and created["disabled"] is False

    one = await (await client.get(f"{ENDPOINTS}/{created['id']}", headers=admin)).json()
    listing = await (await client.get(ENDPOINTS, headers=admin)).json()
    assert "secret" not in one and one["url"] == "https://merchant.example.com/hooks"
    assert [e["id"] for e in listing["items"]] == [created["id"]] and listing["total"] == 1
    assert all("secret" not in e for e in listing["items"])

    changed = await client.patch(f"{ENDPOINTS}/{created['id']}", headers=admin,
                                 json={"events": ["order.shipped", "order.paid"], "disabled": True})  # fmt: skip
    assert changed.status == 200
    body = await changed.json()
    assert body["events"] == ["order.paid", "order.shipped"] and body["disabled"] is True

    assert (await client.delete(f"{ENDPOINTS}/{created['id']}", headers=admin)).status == 204
    assert (await client.get(f"{ENDPOINTS}/{created['id']}", headers=admin)).status == 404


async def test_customers_may_not_touch_webhook_endpoints(client, db, settings):
    response = await client.get(ENDPOINTS, headers=signed_in(db, settings, "customer"))
    assert response.status == 403


#: URLs refused in any mode, with the refusal's code.
NOT_PLAIN_HTTPS = {
    "http://merchant.example.com/hooks": "https_required",
    "ftp://merchant.example.com/hooks": "invalid_url",
    "https://user:pw@merchant.example.com/hooks": "invalid_url",
    "https://[::1/hooks": "invalid_url",
    "https://merchant.example.com:99999/hooks": "invalid_url",
}
#: URLs whose host is, or resolves to, an address inside: refused in production.
INSIDE = (
    "https://127.0.0.1/hooks", "https://localhost/hooks", "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hooks", "https://[::ffff:10.0.0.1]/hooks", "https://224.0.0.1/hooks",
    "https://0.0.0.0/hooks", "https://[fe80::1]/hooks", "https://240.0.0.1/hooks",
)  # fmt: skip


async def test_a_url_that_is_not_plain_https_is_refused(client, admin, db):
    for url, code in NOT_PLAIN_HTTPS.items():
        response = await client.post(ENDPOINTS, json={"url": url, "events": ["*"]}, headers=admin)
        assert response.status == 422, url
        assert (await response.json())["error"]["code"] == code, url
    # in development, plain http to loopback is allowed (a local receiver)
    await register(client, admin, "http://127.0.0.1:8000/hooks")


async def test_in_production_a_url_pointing_inside_is_refused(aiohttp_client, settings, db):
    # Given the API in production mode
    production = settings.model_copy(update={"fulfillment_env": "production"})
    client = await aiohttp_client(create_app(production))
    admin = signed_in(db, settings, "admin")
    # (a public address, literal: the test machine may have no DNS)
    created = await register(client, admin, "https://93.184.216.34/hooks")

    for url in (*INSIDE, "http://127.0.0.1:8000/hooks"):
        # When an admin registers (or changes to) a URL pointing inside
        response = await client.post(ENDPOINTS, json={"url": url, "events": ["*"]}, headers=admin)
        patched = await client.patch(f"{ENDPOINTS}/{created['id']}", json={"url": url},
                                     headers=admin)  # fmt: skip

        # Then it is refused, and nothing is stored
        assert response.status == patched.status == 422, url
        expected = "https_required" if url.startswith("http:") else "address_not_allowed"
        assert (await response.json())["error"]["code"] == expected, url
    with Session(db) as session:
        assert session.scalars(select(WebhookEndpoint.url)).all() == [created["url"]]


# --- the trigger ------------------------------------------------------------------------


async def test_without_a_subscribed_endpoint_an_order_writes_no_event(client, admin, db):
    await register(client, admin, "https://merchant.example.com/hooks", ["order.delivered"])
    order_id = await place_order(client, db)
    set_status(db, order_id, "reserved")

    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(MerchantEvent)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.actor_name == "deliver_webhook")) == 0  # fmt: skip


async def test_every_milestone_is_an_event_with_its_per_order_sequence(client, admin, db):
    # Given an endpoint for every type and one disabled endpoint
    endpoint = await register(client, admin, "https://merchant.example.com/hooks")
    off = await register(client, admin, "https://other.example.com/hooks")
    await client.patch(f"{ENDPOINTS}/{off['id']}", json={"disabled": True}, headers=admin)

    # When an order is placed and moves through its states
    order_id = await place_order(client, db)
    for status in ("reserved", "paid", "fulfilling", "shipped", "in_transit", "delivered"):
        set_status(db, order_id, status)
    # (a timeline entry that is no move, as the e-mail events write, is no milestone)
    with db.begin() as conn:
        conn.execute(text("INSERT INTO order_events (order_id, step, outcome) "
                          "VALUES (:id, 'email_event', 'bounce')"), {"id": order_id})  # fmt: skip

    # Then each milestone is one event, in sequence, for the enabled endpoint only
    with Session(db) as session:
        rows = session.execute(select(MerchantEvent.type, MerchantEvent.sequence, MerchantEvent.id,
                                      MerchantEvent.snapshot)
                               .where(MerchantEvent.order_id == uuid.UUID(order_id))
                               .order_by(MerchantEvent.sequence)).all()  # fmt: skip
    assert [(r.type, r.sequence) for r in rows] == [
        ("order.created", 1),
        ("order.paid", 2),
        ("order.shipped", 3),
        ("order.delivered", 4),
    ]
    assert all(r.id.startswith("evt_") for r in rows)
    assert [r.snapshot["status"] for r in rows] == ["pending", "paid", "shipped", "delivered"]
    sent = deliveries(db)
    assert {str(d.endpoint_id) for d in sent} == {endpoint["id"]} and len(sent) == 4
    with Session(db) as session:
        kwargs = session.scalars(select(OutboxMessage.kwargs)
                                 .where(OutboxMessage.actor_name == "deliver_webhook")).all()  # fmt: skip
    assert sorted(k["delivery_id"] for k in kwargs) == sorted(str(d.id) for d in sent)


def test_the_trigger_knows_every_milestone_in_the_constant(db):
    """The migration froze its list; a milestone added to the constant needs a migration."""
    with db.connect() as conn:
        source = conn.scalar(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'merchant_order_events'")
        )
    assert all(f"'{kind}'" in source for kind in EVENT_TYPES)


# --- delivery ---------------------------------------------------------------------------


async def test_an_event_arrives_signed_with_the_order_as_the_api_shows_it(
    client, admin, db, settings, receiver
):
    endpoint = await register(client, admin, receiver.url, ["order.created"])
    order_id = await place_order(client, db)
    [delivery] = deliveries(db)

    assert await run_step(step_deps(db, settings), delivery.id) == "success"

    [got] = receiver.received
    assert verify(got.body, got.signature, endpoint["secret"])
    assert not verify(got.body, got.signature, "whsec_wrong")
    assert not verify(got.body + b" ", got.signature, endpoint["secret"])
    event = got.event
    shown = await (await client.get(f"/v1/orders/{order_id}", headers=admin)).json()
    assert event["type"] == "order.created" and event["sequence"] == 1
    # (one order's GET also lists its refunds, which the event leaves to that GET)
    assert shown["payment"].pop("refunds") == [] and event["data"]["object"]["payment"].pop(
        "refunds") is None  # fmt: skip
    assert event["data"]["object"] == shown
    assert got.headers["Fulfillment-Event-Id"] == event["id"]
    assert got.headers["Fulfillment-Delivery-Id"] == str(delivery.id)
    [after] = deliveries(db)
    assert after.status == "delivered" and after.attempts == 1
    log = await (await client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin)).json()
    [attempt] = log["items"]
    assert attempt["event_id"] == event["id"] and attempt["outcome"] == "delivered"
    assert attempt["response_code"] == 200 and attempt["attempt"] == 1
    # a duplicate message for a delivered delivery sends nothing
    assert await run_step(step_deps(db, settings), delivery.id) == "skipped"
    assert len(receiver.received) == 1


async def test_a_failed_delivery_is_retried_with_backoff_until_it_is_answered(
    client, admin, db, settings, receiver
):
    # Given a receiver that answers 500 once
    endpoint = await register(client, admin, receiver.url, ["order.created"])
    receiver.fail_next(500)
    await place_order(client, db)
    [delivery] = deliveries(db)
    deps = step_deps(db, settings, webhook_retry_min_seconds=30)

    # When the first attempt fails
    assert await run_step(deps, delivery.id) == "failed"

    # Then it waits out its backoff (jittered: between half and all of 30 s)
    [waiting] = deliveries(db)
    delay = (waiting.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert waiting.status == "pending" and waiting.attempts == 1 and 10 < delay <= 30
    assert dispatch_due(db) == 0

    # When its time comes, the scheduler's pass queues it and the retry is answered
    with db.begin() as conn:
        conn.execute(update(WebhookDelivery).values(next_attempt_at=func.now()))
    assert dispatch_due(db) == 1
    assert await run_step(deps, delivery.id) == "success"

    # Then the receiver got the same event twice (one per attempt), and the log says so
    first, second = receiver.received
    assert first.event["id"] == second.event["id"] and first.body == second.body
    assert second.headers["Fulfillment-Attempt"] == "2"
    log = await (await client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin)).json()
    assert [(a["attempt"], a["outcome"], a["response_code"]) for a in log["items"]] == [
        (2, "delivered", 200),
        (1, "failed", 500),
    ]
    assert "HTTP 500" in log["items"][1]["error"]


async def test_after_a_rotation_the_old_secret_verifies_until_its_grace_period_ends(
    client, admin, db, settings, receiver
):
    endpoint = await register(client, admin, receiver.url, ["order.created", "order.paid"])
    rotated = await client.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", headers=admin)
    assert rotated.status == 200
    new = (await rotated.json())["secret"]
    assert new != endpoint["secret"] and new.startswith("whsec_")

    # During the grace period both secrets verify the same delivery
    order_id = await place_order(client, db)
    [first] = deliveries(db)
    await run_step(step_deps(db, settings), first.id)
    got = receiver.received[-1]
    assert verify(got.body, got.signature, new) and verify(
        got.body, got.signature, endpoint["secret"]
    )

    # After it, only the new one
    with db.begin() as conn:
        conn.execute(
            update(WebhookEndpoint).values(
                previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    set_status(db, order_id, "paid")
    [second] = deliveries(db, status="pending")
    await run_step(step_deps(db, settings), second.id)
    got = receiver.received[-1]
    assert verify(got.body, got.signature, new)
    assert not verify(got.body, got.signature, endpoint["secret"])


async def test_redeliver_sends_an_event_again_with_the_same_id(
    client, admin, db, settings, receiver
):
    endpoint = await register(client, admin, receiver.url)
    order_id = await place_order(client, db)
    set_status(db, order_id, "rejected")
    for delivery in deliveries(db):
        await run_step(step_deps(db, settings), delivery.id)
    sent = [r.event["id"] for r in receiver.received]
    assert len(sent) == 2

    # When an admin redelivers one event
    response = await client.post(f"{ENDPOINTS}/{endpoint['id']}/redeliver", headers=admin,
                                 json={"event_id": sent[0]})  # fmt: skip
    assert response.status == 202 and (await response.json()) == {"redelivered": 1}
    [again] = deliveries(db, status="pending")
    await run_step(step_deps(db, settings), again.id)
    assert receiver.received[-1].event["id"] == sent[0]

    # And every event of a time range
    now = datetime.now(UTC)
    window = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }
    response = await client.post(f"{ENDPOINTS}/{endpoint['id']}/redeliver", headers=admin,
                                 json=window)  # fmt: skip
    assert (await response.json()) == {"redelivered": 2}
    for delivery in deliveries(db, status="pending"):
        await run_step(step_deps(db, settings), delivery.id)
    assert sorted(r.event["id"] for r in receiver.received[-2:]) == sorted(sent)

    unknown = await client.post(f"{ENDPOINTS}/{endpoint['id']}/redeliver", headers=admin,
                                json={"event_id": "evt_" + "0" * 32})  # fmt: skip
    assert unknown.status == 404
    both = await client.post(f"{ENDPOINTS}/{endpoint['id']}/redeliver", headers=admin,
                             json={"event_id": sent[0], **window})  # fmt: skip
    assert both.status == 422


async def test_an_endpoint_failing_past_the_limit_is_disabled_and_the_admins_told(
    client, admin, db, settings, receiver
):
    # Given an endpoint that has failed long enough
    endpoint = await register(client, admin, receiver.url, ["order.created"])
    with db.begin() as conn:
        conn.execute(
            update(WebhookEndpoint).values(failing_since=datetime.now(UTC) - timedelta(days=4))
        )
    receiver.fail_next(503, 503)
    await place_order(client, db)
    await place_order(client, db)
    first, second = deliveries(db)

    # When one more delivery fails
    assert await run_step(step_deps(db, settings), first.id) == "failed"

    # Then it is disabled, each admin gets an e-mail through the outbox, and the next
    # delivery to it is abandoned without a request
    shown = await (await client.get(f"{ENDPOINTS}/{endpoint['id']}", headers=admin)).json()
    assert shown["disabled"] is True and "failed since" in shown["disabled_reason"]
    with Session(db) as session:
        mails = session.scalars(select(Notification)
                                .where(Notification.kind == "webhook_endpoint_disabled")).all()  # fmt: skip
        assert len(mails) == 1 and mails[0].data["url"] == receiver.url
        queued = session.scalars(select(OutboxMessage.kwargs)
                                 .where(OutboxMessage.actor_name == "send_notification")).all()  # fmt: skip
        assert {"notification_id": str(mails[0].id)} in queued
    assert await run_step(step_deps(db, settings), second.id) == "skipped"
    assert len(receiver.received) == 1
    assert [d.status for d in deliveries(db)] == ["pending", "abandoned"]

    # When an admin enables it again, its failures are forgiven
    enabled = await client.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"disabled": False},
                                 headers=admin)  # fmt: skip
    assert (await enabled.json())["failing_since"] is None


async def test_in_production_a_delivery_to_an_address_inside_is_refused_without_connecting(
    client, admin, db, settings, receiver
):
    # Given an endpoint whose host now resolves inside (as after DNS rebinding: stored
    # while it resolved to a public address)
    endpoint = await register(client, admin, receiver.url, ["order.created"])
    inside = receiver.url.replace("http://", "https://")
    with db.begin() as conn:
        conn.execute(update(WebhookEndpoint).values(url=inside))
    await place_order(client, db)
    [delivery] = deliveries(db)

    # When a production worker delivers to it
    production = step_deps(db, settings, fulfillment_env="production")
    assert await run_step(production, delivery.id) == "failed"

    # Then nothing was sent, and the attempt says why
    assert receiver.received == []
    log = await (await client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin)).json()
    [attempt] = log["items"]
    assert attempt["response_code"] is None and "loopback address" in attempt["error"]


async def test_events_past_their_retention_are_forgotten_unless_still_pending(client, admin, db):
    # Given two old events with a delivery each, one delivered and one still pending
    await register(client, admin, "https://merchant.example.com/hooks")
    first, second = await place_order(client, db), await place_order(client, db)
    old = datetime.now(UTC) - timedelta(days=EVENT_RETENTION_DAYS + 1)
    with db.begin() as conn:
        conn.execute(update(MerchantEvent).values(created_at=old))
        conn.execute(update(WebhookDelivery).values(status="delivered")
                     .where(WebhookDelivery.event_id == select(MerchantEvent.id).where(
                         MerchantEvent.order_id == uuid.UUID(first)).scalar_subquery()))  # fmt: skip

    # When the scheduler cleans up
    assert clean_up(db) == 1

    # Then the delivered one is gone with its delivery, the pending one is kept
    with Session(db) as session:
        kept = session.scalars(select(MerchantEvent.order_id)).all()
    assert kept == [uuid.UUID(second)] and len(deliveries(db)) == 1
