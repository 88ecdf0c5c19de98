"""Storefront traffic against a running API, for end-to-end and chaos tests."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import aiohttp

from tests.support.storefront import PASSWORD, order_body

#: Customers the orders are spread over.
CUSTOMERS = 5


async def _customer(http: aiohttp.ClientSession, api: str) -> str:
    email = f"shopper-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "first_name": "Sam", "last_name": "Shopper"}
    async with http.post(f"{api}/v1/users", json=body) as response:
        assert response.status == 201, await response.text()
    async with http.post(
        f"{api}/v1/auth/login", json={"email": email, "password": PASSWORD}
    ) as response:
        return (await response.json())["access_token"]


async def _place(http, api: str, token: str, body: dict, *, attempts: int = 30) -> str:
    """One order, retried with the same Idempotency-Key as a storefront would."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    for _ in range(attempts):
        try:
            async with http.post(f"{api}/v1/orders", json=body, headers=headers) as response:
                if response.status == 201:
                    return (await response.json())["id"]
                if response.status < 500 and response.status != 409:
                    raise AssertionError(f"{response.status}: {await response.text()}")
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the API never accepted the order")


async def place_orders(
    api: str, product_id: uuid.UUID, cards: list[str], *, quantity: int = 1, concurrency: int = 16
) -> dict[str, str]:
    """Places one order per card; returns {order id: card}."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        tokens = [await _customer(http, api) for _ in range(CUSTOMERS)]
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, card: str) -> tuple[str, str]:
            async with gate:
                body = order_body((product_id, quantity), payment_method=card)
                return await _place(http, api, tokens[index % CUSTOMERS], body), card

        return dict(await asyncio.gather(*(one(i, card) for i, card in enumerate(cards))))


def mails_by_kind(sandbox_url: str) -> Counter[str]:
    import requests

    response = requests.get(
        f"{sandbox_url}/sendgrid/v3/messages", params={"limit": 100000},
        headers={"Authorization": "Bearer SG.sandbox"}, timeout=10,
    )  # fmt: skip
    response.raise_for_status()
    return Counter(m["custom_args"].get("kind") for m in response.json()["messages"])
