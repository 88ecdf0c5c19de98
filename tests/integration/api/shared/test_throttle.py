"""Throttling on Redis: logins per address and per account with progressive lockout,
registrations and refreshes per address, orders per customer, and argon2 bounded."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.app import create_app
from fulfillment import passwords
from fulfillment.models import OutboxMessage, User
from fulfillment.settings import ConfigError, load_settings
from monitoring import metrics
from tests.support.storefront import (
    PASSWORD,
    add_product,
    bearer,
    customer_token,
    login,
    order_body,
    register,
)

LOGIN = "/v1/auth/login"


@pytest.fixture
def throttled_client(aiohttp_client, settings, db):
    """The real app with the limits a test names (and 127.0.0.1 as a trusted proxy, so
    X-Forwarded-For can play clients at other addresses)."""

    async def make(**limits):
        tuned = settings.model_copy(update={"trusted_proxies": ("127.0.0.1",), **limits})
        return await aiohttp_client(create_app(tuned))

    return make


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def attempt(client, email: str, password: str, address: str = "203.0.113.1"):
    body = {"email": email, "password": password}
    return await client.post(LOGIN, json=body, headers=from_address(address))


def throttled_count(route: str, reason: str) -> float:
    return metrics.auth_throttled_total.labels(route, reason)._value.get()


async def assert_throttled(response, reason: str) -> int:
    assert response.status == 429, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "too_many_requests"
    assert error["details"]["reason"] == reason
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1 and error["details"]["retry_after"] == retry_after
    return retry_after


async def test_repeated_failures_lock_the_account_out_from_that_address_for_growing_periods(
    throttled_client,
):
    # Given three failures allowed per account and address, lockouts from 1 s doubling
    client = await throttled_client(
        login_lockout_failures=3, login_lockout_base_seconds=1, login_lockout_max_seconds=60
    )
    user = await register(client)
    before = throttled_count(LOGIN, "lockout")

    # When someone guesses wrong three times from one address
    for _ in range(3):
        assert (await attempt(client, user["email"], "wrong-guess-123")).status == 401

    # Then even the right password is refused from there, with Retry-After
    first = await assert_throttled(await attempt(client, user["email"], PASSWORD), "lockout")
    assert first == 1
    assert throttled_count(LOGIN, "lockout") == before + 1
    # while the owner, elsewhere, still logs in
    assert (await attempt(client, user["email"], PASSWORD, "198.51.100.7")).status == 200

    # When the lockout has passed and the guessing goes on, the next lockout is longer
    await wait_until_unlocked(client, user["email"])  # its probe is the first failure
    for _ in range(2):
        assert (await attempt(client, user["email"], "wrong-guess-456")).status == 401
    second = await assert_throttled(await attempt(client, user["email"], PASSWORD), "lockout")
    assert second == 2


async def wait_until_unlocked(client, email: str, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await attempt(client, email, "probe-while-locked")
        if response.status != 429:
            assert response.status == 401  # the probe is a failure of its own
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the lockout never ended")


async def test_a_successful_login_forgets_the_failures(throttled_client):
    client = await throttled_client(login_lockout_failures=2)
    user = await register(client)

    for _ in range(3):  # fail, succeed: never two failures in a row
        assert (await attempt(client, user["email"], "wrong-guess-123")).status == 401
        assert (await attempt(client, user["email"], PASSWORD)).status == 200


async def test_logins_from_one_address_are_limited_whatever_the_account(throttled_client):
    client = await throttled_client(login_address_limit="3/minute")
    before = throttled_count(LOGIN, "address")

    answers = [await attempt(client, f"{i}@example.com", "guess-guess-1") for i in range(4)]

    assert [a.status for a in answers[:3]] == [401, 401, 401]
    await assert_throttled(answers[3], "address")
    assert throttled_count(LOGIN, "address") == before + 1
    # another address is not affected
    assert (await attempt(client, "5@example.com", "guess-guess-1", "198.51.100.9")).status == 401


async def test_one_account_is_limited_across_addresses(throttled_client, settings, redis_client):
    # Given credential stuffing spread over many addresses, aimed at one account
    client = await throttled_client(login_account_limit="2/minute")
    user = await register(client)

    answers = [
        await attempt(client, user["email"], "stuffed-password", f"203.0.113.{i}")
        for i in range(1, 4)
    ]

    assert [a.status for a in answers[:2]] == [401, 401]
    await assert_throttled(answers[2], "account")
    # and Redis holds counts about the account, never its e-mail address
    keys = [k.decode() for k in redis_client.scan_iter(f"{settings.throttle_key_prefix}*")]
    assert keys and not any("@" in key for key in keys)


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    aiohttp_client, settings, db
):
    client = await aiohttp_client(create_app(settings.model_copy(
        update={"login_address_limit": "2/minute"}
    )))  # fmt: skip

    answers = [await attempt(client, "x@example.com", "guess-guess-1", f"203.0.113.{i}")
               for i in range(1, 4)]  # fmt: skip

    assert [a.status for a in answers] == [401, 401, 429]


async def test_registrations_from_one_address_are_limited_and_send_no_more_mail(
    throttled_client, db
):
    client = await throttled_client(register_address_limit="2/hour")
    for _ in range(2):
        await register(client)

    body = {"email": "third@example.com", "password": PASSWORD,
            "first_name": "Ada", "last_name": "Lovelace"}  # fmt: skip
    refused = await client.post("/v1/users", json=body)

    await assert_throttled(refused, "address")
    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2


async def test_refresh_tokens_from_one_address_are_limited(throttled_client):
    client = await throttled_client(password_address_limit="2/minute")
    user = await register(client)
    tokens = await login(client, user["email"])

    answers = []
    for _ in range(3):
        response = await client.post(
            "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        answers.append(response)
        if response.status == 200:
            tokens = await response.json()

    assert [a.status for a in answers[:2]] == [200, 200]
    await assert_throttled(answers[2], "address")


async def test_wrong_current_passwords_lock_a_password_change(throttled_client):
    client = await throttled_client(login_lockout_failures=2)
    token = await customer_token(client)
    change = {"password": "a-new-password-123", "current_password": "not-it-at-all"}

    answers = [
        await client.patch("/v1/users/me", json=change, headers=bearer(token)) for _ in range(3)
    ]

    assert [a.status for a in answers[:2]] == [422, 422]
    await assert_throttled(answers[2], "lockout")


async def test_orders_are_limited_per_customer(throttled_client, db):
    client = await throttled_client(order_customer_limit="2/minute")
    product = add_product(db)
    busy, other = await customer_token(client), await customer_token(client)

    answers = [
        await client.post("/v1/orders", json=order_body((product, 1)), headers=bearer(busy))
        for _ in range(3)
    ]
    others = await client.post("/v1/orders", json=order_body((product, 1)), headers=bearer(other))

    assert [a.status for a in answers[:2]] == [201, 201]
    await assert_throttled(answers[2], "customer")
    assert others.status == 201


async def test_quotes_are_limited_per_customer(throttled_client, db):
    # Each quote asks the carrier and Stripe Tax (out of reach here: a 503 still counts)
    client = await throttled_client(quote_customer_limit="2/minute")
    product = add_product(db)
    busy, other = await customer_token(client), await customer_token(client)
    body = {"items": [{"product_id": str(product), "quantity": 1}],
            "shipping_address": order_body((product, 1))["shipping_address"]}  # fmt: skip

    answers = [await client.post("/v1/checkout/quotes", json=body, headers=bearer(busy))
               for _ in range(3)]  # fmt: skip
    others = await client.post("/v1/checkout/quotes", json=body, headers=bearer(other))

    assert 429 not in [a.status for a in answers[:2]]
    await assert_throttled(answers[2], "customer")
    assert others.status != 429


async def test_an_order_without_a_token_is_401_not_counted(throttled_client, db):
    client = await throttled_client(order_customer_limit="1/minute")
    product = add_product(db)
    for _ in range(2):
        response = await client.post("/v1/orders", json=order_body((product, 1)))
        assert response.status == 401


async def test_password_hashing_runs_only_so_many_at_once(throttled_client, monkeypatch):
    # Given one hash at a time, and a hasher that notes how many run together
    client = await throttled_client(password_hash_concurrency=1)
    user = await register(client)
    running, most = 0, 0
    real_verify = passwords.verify_password

    def counting_verify(password_hash, password):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return real_verify(password_hash, password)
        finally:
            running -= 1

    monkeypatch.setattr(passwords, "verify_password", counting_verify)

    # When eight clients log in at once
    answers = await asyncio.gather(
        *(attempt(client, user["email"], PASSWORD, f"198.51.100.{i}") for i in range(8))
    )

    # Then all are served, one hash after another
    assert [a.status for a in answers] == [200] * 8
    assert most == 1


@pytest.mark.parametrize("value", ["lots", "10/fortnight", ""])
def test_a_limit_that_does_not_parse_stops_start_up(settings, value):
    with pytest.raises(ConfigError, match="ORDER_CUSTOMER_LIMIT"):
        load_settings(database_url=settings.database_url, order_customer_limit=value)
