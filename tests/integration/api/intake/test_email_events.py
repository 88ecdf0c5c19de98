"""SendGrid's signed event webhook, end to end on real servers: the notification step
sends through the SendGrid sandbox, the sandbox posts the mail's signed events to the
API, and the API records them per notification, once; a bounce flags the customer and
the order's timeline, after which only essential mail goes to that address."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.models import EmailEvent, Notification, User
from fulfillment.notifications import intent_insert
from integrations.easypost_gateway import build_easypost_carrier
from integrations.ports import NotificationKind as K
from integrations.sendgrid_gateway import build_sendgrid_mailer
from integrations.stripe_gateway import build_stripe_gateway
from pipelines.deps import Deps
from pipelines.mail.notify import send_claimed, send_notification, send_welcome_email
from sandbox.sendgrid.events import (
    SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY,
    mail_events,
    sendgrid_signature,
)
from tests.support.sandbox import RunningSandbox, running_sandbox
from tests.support.storefront import add_product, bearer, login, order_body, register

WEBHOOK = "/v1/webhooks/sendgrid"
DEADLINE = 10.0

#: Seconds a mail to the sandbox may take: generous, the machine may be busy.
MAIL_TIMEOUT = 5.0


@pytest.fixture
def sandbox(client) -> Iterator[RunningSandbox]:
    """A sandbox whose SendGrid posts its events to this test's API."""
    with running_sandbox(webhook_url=str(client.make_url("/")).rstrip("/")) as running:
        yield running


@pytest.fixture
def deps(sandbox, settings, db) -> Iterator[Deps]:
    """The notification step's world: the test database and the sandbox's SendGrid."""
    providers = sandbox.settings()
    engine = create_sync_db_engine(settings, pool_size=2)
    yield Deps(sessions=sync_session_factory(engine), payments=build_stripe_gateway(providers),
               mailer=build_sendgrid_mailer(providers, timeout=MAIL_TIMEOUT),
               carrier=build_easypost_carrier(providers), settings=settings,
               send_mail=send_claimed)  # fmt: skip
    engine.dispose()


async def eventually(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` (it reads the database) without holding up the API's loop."""
    deadline = time.monotonic() + DEADLINE
    while not (result := await asyncio.to_thread(condition)):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)
    return result


def intent(db, kind: str, *, user_id: uuid.UUID, order_id: uuid.UUID | None = None) -> int:
    with Session(db) as session, session.begin():
        return session.scalar(intent_insert(kind, user_id=user_id, order_id=order_id))


def events_of(db, notification_id: int) -> list[str]:
    with Session(db) as session:
        return sorted(session.scalars(
            select(EmailEvent.event).where(EmailEvent.notification_id == notification_id)))  # fmt: skip


def status_of(db, notification_id: int) -> str:
    with Session(db) as session:
        return session.get(Notification, notification_id).status


def count_events(db) -> int:
    with Session(db) as session:
        return session.scalar(select(func.count()).select_from(EmailEvent))


def signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    return {"Content-Type": "application/json",
            **sendgrid_signature(body, SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY, **kwargs)}  # fmt: skip


def batch_for(dedup_key: str, email: str = "ada@example.com") -> bytes:
    payload = {"personalizations": [{"to": [{"email": email}]}],
               "custom_args": {"dedup_key": dedup_key, "kind": "welcome"}}  # fmt: skip
    return json.dumps(mail_events(payload, uuid.uuid4().hex[:22], now=time.time())).encode()


async def test_signed_events_are_recorded_once_per_notification_even_when_sent_twice(
    client, db, deps, sandbox
):
    # Given SendGrid posts every event batch twice
    sandbox.set_faults(sendgrid={"webhook_duplicate_rate": 1.0})
    user = await register(client)

    # When the customer's welcome e-mail is sent
    assert await asyncio.to_thread(send_welcome_email, deps, user["id"]) == "success"

    # Then both copies reach the API, and the mail's events are recorded once each
    def both_delivered() -> bool:
        sent = sandbox.deliveries("sendgrid")
        return len(sent) == 2 and all(d["status"] == "delivered" for d in sent)

    await eventually(both_delivered, "both copies of the batch")
    with Session(db) as session:
        (mail,) = session.scalars(select(Notification).where(Notification.kind == "welcome"))
    assert events_of(db, mail.id) == ["delivered", "processed"]
    # and the same signed batch sent again by hand changes nothing either
    body = batch_for(mail.dedup_key)
    first = await client.post(WEBHOOK, data=body, headers=signed(body))
    again = await client.post(WEBHOOK, data=body, headers=signed(body))
    assert (await first.json()) == {"received": True, "duplicate": False}
    assert (await again.json()) == {"received": True, "duplicate": True}
    assert events_of(db, mail.id) == ["delivered", "delivered", "processed", "processed"]


async def test_forged_stale_or_unsigned_batches_are_refused_and_nothing_is_recorded(client, db):
    body = batch_for("user_x_welcome")
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()  # fmt: skip
    attempts = {
        "another key": (body, {"Content-Type": "application/json",
                               **sendgrid_signature(body, stranger)}),
        "a tampered body": (body.replace(b"processed", b"delivered"), signed(body)),
        "an old timestamp": (body, signed(body, timestamp=int(time.time()) - 3600)),
        "no signature": (body, {"Content-Type": "application/json"}),
        "garbage": (body, {**signed(body), "X-Twilio-Email-Event-Webhook-Signature": "%%%"}),
    }  # fmt: skip
    for what, (data, headers) in attempts.items():
        response = await client.post(WEBHOOK, data=data, headers=headers)
        assert response.status == 400, what
        assert (await response.json())["error"]["code"] == "invalid_signature", what
    assert count_events(db) == 0


async def test_a_bounce_flags_the_customer_and_the_order_then_only_essential_mail_goes(
    client, db, deps, sandbox
):
    # Given a customer whose mailbox does not exist, with an order
    user = await register(client, f"{uuid.uuid4().hex[:10]}@bounce.example.com")
    token = (await login(client, user["email"]))["access_token"]
    placed = await client.post("/v1/orders", json=order_body((add_product(db), 1)),
                               headers=bearer(token))  # fmt: skip
    order = await placed.json()
    customer, order_id = uuid.UUID(user["id"]), uuid.UUID(order["id"])

    # When the order's confirmation is sent and SendGrid reports the bounce
    confirmed = intent(db, K.ORDER_CONFIRMED, user_id=customer, order_id=order_id)
    assert await asyncio.to_thread(send_notification, deps, str(confirmed)) == "success"
    await eventually(lambda: "bounce" in events_of(db, confirmed), "the bounce")

    # Then the customer is flagged, and the order's timeline says why
    with Session(db) as session:
        assert session.get(User, customer).email_status == "bounced"
    timeline = await (await client.get(f"/v1/orders/{order_id}/events",
                                       headers=bearer(token))).json()  # fmt: skip
    (entry,) = [e for e in timeline["items"] if e["step"] == "email_event"]
    assert entry["outcome"] == "bounced"
    assert entry["details"]["kind"] == "order_confirmed" and "5.1.1" in entry["details"]["reason"]

    # When more mail is due to that address
    sent_before = len(sandbox.messages())
    welcome = await asyncio.to_thread(send_welcome_email, deps, user["id"])
    delivered = intent(db, K.DELIVERED, user_id=customer, order_id=order_id)
    shipped = intent(db, K.SHIPPED, user_id=customer, order_id=order_id)
    outcomes = [await asyncio.to_thread(send_notification, deps, str(n))
                for n in (delivered, shipped)]  # fmt: skip

    # Then the nice-to-have mail is suppressed without calling SendGrid; the shipping
    # notice, which the customer must get, still goes
    assert (welcome, outcomes) == ("skipped", ["skipped", "success"])
    assert status_of(db, delivered) == "suppressed" and status_of(db, shipped) == "sent"
    messages = sandbox.messages()  # newest first
    assert [m["custom_args"]["kind"] for m in messages[: len(messages) - sent_before]] == [
        "shipped"
    ]
