"""Outbound webhooks as the tests drive them: an admin or a customer signed in without a
password, endpoints registered through the real API, orders placed and moved as every
writer moves them, the delivery step run by hand; and the fixtures ``admin`` and
``receiver`` (a merchant's endpoint on loopback, ``tests.support.merchant``)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.shared.context import SETTINGS
from api.shared.tokens import TokenService
from fulfillment.db import sync_session_factory
from fulfillment.models import User, WebhookDelivery
from pipelines.deps import Deps
from pipelines.mail.notify import send_claimed
from pipelines.merchant_webhooks.deliver import deliver_webhook
from tests.support.merchant import Receiver, documented_verify
from tests.support.storefront import add_product, bearer, order_body

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
                settings=settings.model_copy(update=overrides), send_mail=send_claimed)  # fmt: skip


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
