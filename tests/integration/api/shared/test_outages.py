"""PostgreSQL or Redis going away is a 503 with Retry-After on the routes that need it,
answered within seconds (never a 500, never a hang), and the API recovers by itself
once the server is back. The servers are real; a relay in front of each
(``tests.support.outage``) refuses and cuts connections as a stopped server does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_app
from api.orders import placement
from api.shared.context import TOKENS
from fulfillment.models import Order, User
from fulfillment.settings import Settings
from sandbox.webhooks import stripe_signature
from tests.support.outage import Outage
from tests.support.storefront import add_product, bearer, login, order_body, register

#: A request during an outage must be answered within this (connect timeout 3 s).
ANSWER_WITHIN_SECONDS = 10


@pytest.fixture
async def database_outage(database_url: str) -> AsyncIterator[Outage]:
    outage = Outage(database_url)
    await outage.up()
    yield outage
    await outage.down()


@pytest.fixture
async def redis_outage(redis_url: str) -> AsyncIterator[Outage]:
    outage = Outage(redis_url)
    await outage.up()
    yield outage
    await outage.down()


def account(engine, *, role: str) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:12]}@example.com", password_hash="unused",
                    first_name="Ada", last_name="Lovelace", role=role)  # fmt: skip
        session.add(user)
        session.flush()
        return user.id


async def api(aiohttp_client, settings: Settings, db, **through: Outage):
    """The app on ``settings`` with the named URLs going through their relays, and a
    customer's and an admin's bearer headers."""
    urls = {f"{name}_url": outage.url for name, outage in through.items()}
    client = await aiohttp_client(create_app(settings.model_copy(update=urls)))
    tokens = client.app[TOKENS]
    customer = bearer(tokens.issue_access(user_id=account(db, role="customer"), role="customer"))
    admin = bearer(tokens.issue_access(user_id=account(db, role="admin"), role="admin"))
    return client, customer, admin


async def answer(request) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, headers), failing if it takes longer than an outage may."""
    started = time.monotonic()
    async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
        response = await request
        body = await response.json()
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS
    return response.status, body, dict(response.headers)


def assert_unavailable(result, dependency: str) -> None:
    status, body, headers = result
    assert status == 503, body
    assert body["error"]["code"] == "service_unavailable", body
    assert body["error"]["details"] == {"dependency": dependency}
    assert int(headers["Retry-After"]) > 0


async def recovered(request_factory, *, status: int, within: float = 20) -> dict:
    """Polls until a request answers ``status`` again (the API needs no restart)."""
    deadline = time.monotonic() + within
    while True:
        got, body, _ = await answer(request_factory())
        if got == status:
            return body
        assert got == 503, body  # on the way back, still never a 500
        assert time.monotonic() < deadline, f"still {got} after {within} s: {body}"
        await asyncio.sleep(0.3)


def stripe_event() -> bytes:
    event = {"id": f"evt_{uuid.uuid4().hex[:12]}", "object": "event",
             "type": "payment_intent.succeeded",
             "data": {"object": {"id": "pi_1", "metadata": {"order_id": str(uuid.uuid4())}}}}  # fmt: skip
    return json.dumps(event).encode()


async def test_database_down_is_503_everywhere_it_is_needed_and_the_api_recovers(
    aiohttp_client, settings, db, database_outage
):
    # Given the API working on a database that then goes away
    client, customer, admin = await api(aiohttp_client, settings, db, database=database_outage)
    product = add_product(db, on_hand=100)
    assert (await answer(client.get("/v1/products")))[0] == 200
    assert (await answer(client.post("/v1/orders", json=order_body((product, 1)),
                                     headers=customer)))[0] == 201  # fmt: skip
    await database_outage.down()
    secret = settings.stripe_webhook_secret.get_secret_value()
    payload = stripe_event()
    signed = {"Stripe-Signature": stripe_signature(payload, secret),
              "Content-Type": "application/json"}  # fmt: skip

    # When requests come in meanwhile: reads, a signed-in read, orders through the group
    # commit (several at once), a webhook, the readiness probe
    orders = [client.post("/v1/orders", json=order_body((product, 1)), headers=customer)
              for _ in range(5)]  # fmt: skip
    results = await asyncio.gather(
        answer(client.get("/v1/products")),
        answer(client.get(f"/v1/products/{product}")),
        answer(client.get("/v1/users/me", headers=customer)),
        answer(client.post("/v1/auth/login", json={"email": "a@example.com", "password": "x"})),
        answer(client.post("/v1/webhooks/stripe", data=payload, headers=signed)),
        *(answer(order) for order in orders),
    )
    ready = await answer(client.get("/readyz"))

    # Then each is a 503 with Retry-After, at once
    for result in results:
        assert_unavailable(result, "database")
    assert ready[0] == 503 and ready[1]["checks"]["database"] != "ok"
    assert (await answer(client.get("/healthz")))[0] == 200  # alive all the same

    # And when the database is back, the same API serves again, orders included
    await database_outage.up()
    await recovered(lambda: client.get("/v1/products"), status=200)
    await recovered(lambda: client.post("/v1/orders", json=order_body((product, 1)),
                                        headers=customer), status=201)  # fmt: skip
    await recovered(lambda: client.post("/v1/webhooks/stripe", data=payload, headers=signed),
                    status=200)  # fmt: skip
    assert (await answer(client.get("/readyz")))[0] == 200
    assert (await answer(client.get("/v1/orders", headers=admin)))[0] == 200


async def test_an_outage_mid_traffic_fails_the_waiting_orders_and_none_hangs(
    aiohttp_client, settings, db, database_outage
):
    # Given orders streaming in through the group commit
    client, customer, _ = await api(aiohttp_client, settings, db, database=database_outage)
    product = add_product(db, on_hand=1000)

    async def place() -> tuple[int, dict]:
        status, body, _ = await answer(
            client.post("/v1/orders", json=order_body((product, 1)), headers=customer)
        )
        assert status in (201, 503), body
        return status, body

    # When the database goes away while 40 of them are in flight
    flight = [asyncio.create_task(place()) for _ in range(40)]
    await asyncio.sleep(0.05)
    await database_outage.down()
    answers = await asyncio.gather(*flight)

    # Then every one is answered, 201 or 503, and the orders stored are the 201s, and
    # perhaps some of those whose COMMIT was cut on its way (a 503 that says so and
    # names the order); a plain 503 stored nothing
    placed = {body["id"] for status, body in answers if status == 201}
    unknown = {body["error"]["details"]["order_id"] for status, body in answers
               if status == 503 and body["error"]["code"] == "order_outcome_unknown"}  # fmt: skip
    assert all(body["error"]["code"] in ("service_unavailable", "order_outcome_unknown")
               for status, body in answers if status == 503), answers  # fmt: skip
    await database_outage.up()
    with Session(db) as session:
        stored = {str(order_id) for order_id in session.scalars(select(Order.id))}
    assert placed <= stored <= placed | unknown, (placed, unknown, stored)
    await recovered(lambda: client.post("/v1/orders", json=order_body((product, 1)),
                                        headers=customer), status=201)  # fmt: skip


async def test_redis_down_is_503_where_redis_is_needed_and_the_api_recovers(
    aiohttp_client, settings, db, redis_outage
):
    # Given the API on a Redis that then goes away
    client, customer, admin = await api(aiohttp_client, settings, db, redis=redis_outage)
    assert (await answer(client.get("/v1/admin/dead-letters", headers=admin)))[0] == 200
    shopper = await register(client)
    await redis_outage.down()

    # When operators and probes ask for what lives in Redis
    letters = await answer(client.get("/v1/admin/dead-letters", headers=admin))
    replay = await answer(client.post(f"/v1/admin/dead-letters/{uuid.uuid4()}/replay",
                                      headers=admin))  # fmt: skip
    ready = await answer(client.get("/readyz"))

    # Then they are 503s with Retry-After; what needs only PostgreSQL goes on
    assert_unavailable(letters, "broker")
    assert_unavailable(replay, "broker")
    assert ready[0] == 503 and ready[1]["checks"]["redis"] != "ok"
    assert (await answer(client.get("/v1/users/me", headers=customer)))[0] == 200
    # and the login throttle, which counts in Redis, lets logins through (fails open)
    assert (await login(client, shopper["email"]))["access_token"]

    # And once Redis is back, so are they
    await redis_outage.up()
    await recovered(lambda: client.get("/v1/admin/dead-letters", headers=admin), status=200)
    await recovered(lambda: client.get("/readyz"), status=200)


def cut_after_commit(monkeypatch, before_raising=None) -> None:
    """The order batch's COMMIT reaches PostgreSQL and commits, and then its connection
    dies before the answer comes back: the moment a network cut makes a commit's outcome
    unknown to the API, made exact."""
    commit = placement._commit

    async def committed_then_cut(conn, written) -> None:
        await commit(conn, written)
        if before_raising is not None:
            await before_raising()
        await conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(placement, "_commit", committed_then_cut)


async def test_a_commit_cut_on_its_way_back_is_found_stored_and_answered_201(
    aiohttp_client, settings, db, monkeypatch
):
    # Given an order whose batch commits but whose connection dies before the answer
    client, customer, _ = await api(aiohttp_client, settings, db)
    product = add_product(db, on_hand=5)
    cut_after_commit(monkeypatch)

    # When it is placed
    status, body, _ = await answer(
        client.post("/v1/orders", json=order_body((product, 1)), headers=customer)
    )

    # Then the API asked the database what it stored, and the order is a 201, once
    assert status == 201, body
    with Session(db) as session:
        assert [str(i) for i in session.scalars(select(Order.id))] == [body["id"]]


async def test_a_commit_whose_outcome_cannot_be_learned_names_the_order_and_a_keyed_retry_finds_it(
    aiohttp_client, settings, db, database_outage, monkeypatch
):
    # Given an order whose batch commits, and then the database goes away before the
    # answer comes back
    client, customer, _ = await api(aiohttp_client, settings, db, database=database_outage)
    product = add_product(db, on_hand=5)
    cut_after_commit(monkeypatch, before_raising=database_outage.down)
    keyed = {**customer, "Idempotency-Key": f"cut-{uuid.uuid4().hex}"}

    # When it is placed
    status, body, headers = await answer(
        client.post("/v1/orders", json=order_body((product, 1)), headers=keyed)
    )

    # Then it is a 503 that says the outcome is unknown and names the order
    assert status == 503, body
    assert body["error"]["code"] == "order_outcome_unknown"
    assert headers["Retry-After"]
    order_id = body["error"]["details"]["order_id"]

    # And once the database is back, the same request with the same key answers that
    # order, stored once
    monkeypatch.undo()
    await database_outage.up()
    retry = await recovered(
        lambda: client.post("/v1/orders", json=order_body((product, 1)), headers=keyed),
        status=201,
    )
    assert retry["id"] == order_id
    with Session(db) as session:
        assert [str(i) for i in session.scalars(select(Order.id))] == [order_id]
