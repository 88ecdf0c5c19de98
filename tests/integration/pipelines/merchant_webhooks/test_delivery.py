"""Outbound webhooks delivered by the real delivery step, posting over HTTP to a real
receiver on loopback: signed, retried with backoff, verifiable with the old secret
during a rotation, redelivered with the same id, the endpoint disabled past the limit,
nothing sent inside in production, events forgotten past their retention. Retries are
made due by hand here; ``tests/e2e/test_merchant_webhooks.py`` runs the whole system
with its scheduler."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from fulfillment.models import (
    MerchantEvent,
    Notification,
    OutboxMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from pipelines.merchant_webhooks.deliver import deliver_webhooks
from tests.support.merchant import Receiver
from tests.support.merchant_webhooks import (
    ENDPOINTS,
    deliveries,
    place_order,
    register,
    run_step,
    set_status,
    step_deps,
    verify,
)
from workers.webhook_dispatch import EVENT_RETENTION_DAYS, clean_up, dispatch_due


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


async def run_batch(deps, deliveries_) -> str:
    return await asyncio.to_thread(deliver_webhooks, deps, [str(d.id) for d in deliveries_])


async def test_the_dispatch_sends_an_endpoints_due_deliveries_in_one_batch_over_one_connection(
    client, admin, db, settings, receiver
):
    # Given an endpoint for every event, and two orders whose events are all due
    await register(client, admin, receiver.url)
    first, second = await place_order(client, db), await place_order(client, db)
    set_status(db, first, "rejected")
    # When the scheduler's pass runs, then the batch it queued
    assert dispatch_due(db) == 3
    with Session(db) as session:
        [kwargs] = session.scalars(select(OutboxMessage.kwargs)
                                   .where(OutboxMessage.actor_name == "deliver_webhooks")).all()  # fmt: skip
    assert await asyncio.to_thread(deliver_webhooks, step_deps(db, settings),
                                   kwargs["delivery_ids"]) == "success"  # fmt: skip
    # Then each event arrived once, each order's in sequence, over one connection
    got = [(r.event["order_id"], r.event["sequence"]) for r in receiver.received]
    assert sorted(got) == sorted([(first, 1), (first, 2), (second, 1)])
    assert [s for o, s in got if o == first] == [1, 2]
    assert len({r.peer for r in receiver.received}) == 1
    # and every attempt was recorded, in one commit
    assert {(d.status, d.attempts) for d in deliveries(db)} == {("delivered", 1)}
    with Session(db) as session:
        xids = session.scalars(select(func.count(func.distinct(text("xmin::text"))))
                               .select_from(WebhookDelivery)).one()  # fmt: skip
    assert xids == 1
    # and the same batch again (its message delivered twice) sends nothing
    assert await run_batch(step_deps(db, settings), deliveries(db)) == "skipped"
    assert len(receiver.received) == 3


async def test_a_batch_stops_calling_an_endpoint_that_gave_no_answer(client, admin, db, settings):
    # Given three due deliveries to an endpoint nothing listens on
    with Receiver() as gone:
        endpoint = await register(client, admin, gone.url, ["order.created"])
    for _ in range(3):
        await place_order(client, db)
    batch = deliveries(db)
    deps = step_deps(db, settings, webhook_retry_min_seconds=30)

    # When a batch runs
    assert await run_batch(deps, batch) == "failed"

    # Then one attempt was made and logged; the others wait as long, no attempt counted
    after = {d.id: d for d in deliveries(db)}
    tried, *waiting = (after[d.id] for d in batch)
    assert tried.attempts == 1 and tried.status == "pending"
    assert [(d.attempts, d.status) for d in waiting] == [(0, "pending"), (0, "pending")]
    assert {d.next_attempt_at for d in waiting} == {tried.next_attempt_at}
    assert 10 < (tried.next_attempt_at - datetime.now(UTC)).total_seconds() <= 30
    log = await (await client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=admin)).json()
    assert [a["outcome"] for a in log["items"]] == ["failed"]


async def test_a_success_in_a_batch_clears_the_endpoints_failing_time_and_a_later_failure_starts_it(
    client, admin, db, settings, receiver
):
    # Given an endpoint failing for days, and two due deliveries
    endpoint = await register(client, admin, receiver.url, ["order.created"])
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with db.begin() as conn:
        conn.execute(update(WebhookEndpoint).values(failing_since=long_ago))
    await place_order(client, db)
    await place_order(client, db)
    first, second = deliveries(db)

    # When the first is answered and the second refused with a 500, in one batch
    receiver.fail_next(200, 500)
    before = datetime.now(UTC)
    assert await run_batch(step_deps(db, settings), [first, second]) == "failed"

    # Then the endpoint has failed only since that failure (not for days)
    shown = await (await client.get(f"{ENDPOINTS}/{endpoint['id']}", headers=admin)).json()
    assert datetime.fromisoformat(shown["failing_since"]) >= before
    assert shown["disabled"] is False


async def test_a_redelivery_asked_while_a_batch_waits_on_its_answer_is_still_sent(
    client, admin, db, settings, receiver
):
    # Given a batch whose POST has reached the merchant but not been answered yet
    endpoint = await register(client, admin, receiver.url, ["order.created"])
    await place_order(client, db)
    [delivery] = deliveries(db)
    arrived, release = receiver.hold_next()
    batch = asyncio.create_task(run_batch(step_deps(db, settings), [delivery]))
    assert await asyncio.to_thread(arrived.wait, 10)
    event_id = receiver.received[0].event["id"]

    # When an admin redelivers the event meanwhile, then the merchant answers the batch
    response = await client.post(f"{ENDPOINTS}/{endpoint['id']}/redeliver", headers=admin,
                                 json={"event_id": event_id})  # fmt: skip
    assert (await response.json()) == {"redelivered": 1}
    release.set()
    assert await batch == "success"

    # Then the batch's answer is logged but leaves the redelivery standing: the event
    # is sent again after the admin asked, and only that send marks it delivered
    [pending] = deliveries(db)
    assert (pending.status, pending.attempts) == ("pending", 0)
    with Session(db) as session:
        logged = session.scalars(select(func.count()).select_from(WebhookAttempt)).one()
    assert logged == 1
    assert await run_step(step_deps(db, settings), delivery.id) == "success"
    assert [r.event["id"] for r in receiver.received] == [event_id, event_id]
    [done] = deliveries(db)
    assert (done.status, done.attempts) == ("delivered", 1)
