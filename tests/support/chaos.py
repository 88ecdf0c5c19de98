"""What the chaos tests share: storefront load that keeps a record of every answer, and
the checks made once the dust settles (``fulfillment verify``, one label per order, no
order ever moved back)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import requests
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fulfillment.models import OrderEvent
from fulfillment.states import HAPPY_PATH
from tests.support.storefront import PASSWORD, order_body

#: Customers the orders are spread over.
CUSTOMERS = 5


def verify_clean(system) -> None:
    result = system.fulfillment("verify")
    assert result.returncode == 0, result.stdout + result.stderr


def in_background(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


@dataclass
class Load:
    """What the storefront saw: the orders the API accepted (201) and every answer."""

    accepted: dict[str, str] = field(default_factory=dict)  # order id -> card
    answers: Counter[int] = field(default_factory=Counter)  # status; 0 = no answer
    retry_after: list[str] = field(default_factory=list)  # on each 503
    cancels: dict[str, int] = field(default_factory=dict)  # order id -> status answered


async def _customer(http: aiohttp.ClientSession, api: str) -> str:
    email = f"chaos-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "first_name": "Cy", "last_name": "Chaos"}
    for _ in range(100):  # the API may be restarting
        try:
            async with http.post(f"{api}/v1/users", json=body) as response:
                if response.status in (201, 409):
                    async with http.post(f"{api}/v1/auth/login",
                                         json={"email": email, "password": PASSWORD}) as login:  # fmt: skip
                        if login.status == 200:
                            return (await login.json())["access_token"]
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{api} never let a customer in")


async def _send(http, load: Load, method: str, url: str, **kwargs) -> tuple[int, dict]:
    """One request; (status, JSON body), 0 when the connection failed."""
    try:
        async with http.request(method, url, **kwargs) as response:
            load.answers[response.status] += 1
            if response.status == 503:
                load.retry_after.append(response.headers.get("Retry-After", ""))
            body = await response.json(content_type=None) if response.content_length else {}
            return response.status, body or {}
    except (aiohttp.ClientError, TimeoutError):
        load.answers[0] += 1
        return 0, {}


async def _place(http, load: Load, apis, token: str, body: dict, *, patience: float) -> str:
    """One order, retried with the same Idempotency-Key (as a storefront does) on any
    5xx, 409 or lost connection, on the next API in turn, until ``patience`` runs out."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        status, answer = await _send(http, load, "POST", f"{next(apis)}/v1/orders",
                                     json=body, headers=headers)  # fmt: skip
        if status == 201:
            return answer["id"]
        assert status in (0, 409) or status >= 500, f"{status}: {answer}"
        await asyncio.sleep(0.25)
    raise AssertionError(f"no API accepted the order within {patience} s")


async def place(
    api_urls: list[str], product_id: uuid.UUID, cards: list[str], *,
    per_second: float = 20.0, concurrency: int = 8, patience: float = 90.0,
    cancel_every: int = 0,
) -> Load:  # fmt: skip
    """One order per card, started ``per_second`` apart over the APIs in turn (so that
    what a test does meanwhile happens mid-load); every ``cancel_every``-th order is
    cancelled by its customer as soon as it is accepted."""
    load = Load()
    apis = itertools.cycle(api_urls)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        tokens = [await _customer(http, api_urls[i % len(api_urls)]) for i in range(CUSTOMERS)]
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, card: str) -> None:
            await asyncio.sleep(index / per_second)
            token = tokens[index % CUSTOMERS]
            async with gate:
                body = order_body((product_id, 1), payment_method=card)
                order_id = await _place(http, load, apis, token, body, patience=patience)
            load.accepted[order_id] = card
            if cancel_every and index % cancel_every == 1:
                url = f"{next(apis)}/v1/orders/{order_id}/cancel"
                auth = {"Authorization": f"Bearer {token}"}
                status, _ = await _send(http, load, "POST", url, headers=auth)
                load.cancels[order_id] = status

        await asyncio.gather(*(one(i, card) for i, card in enumerate(cards)))
    return load


def labels_per_order(sandbox_url: str) -> Counter[str]:
    """Bought EasyPost labels by order (the shipment's reference), as EasyPost lists them."""
    labels: Counter[str] = Counter()
    params: dict[str, str | int] = {"page_size": 100, "purchased": "true"}
    while True:
        response = requests.get(f"{sandbox_url}/easypost/v2/shipments", params=params,
                                headers={"Authorization": "Bearer EZTK_support"}, timeout=10)  # fmt: skip
        response.raise_for_status()
        page = response.json()
        labels.update(s["reference"] for s in page["shipments"])
        if not page["has_more"]:
            return labels
        params["before_id"] = page["shipments"][-1]["id"]


def backward_moves(engine: Engine) -> list[str]:
    """Every recorded move to an earlier happy-path state (there must be none)."""
    rank = {state.value: i for i, state in enumerate(HAPPY_PATH)}
    with Session(engine) as session:
        events = session.execute(
            select(OrderEvent.order_id, OrderEvent.to_status).order_by(OrderEvent.id)
        ).all()
    reached: dict[uuid.UUID, int] = {}
    moves = []
    for order_id, to_status in events:
        if to_status not in rank:
            continue
        if rank[to_status] < reached.get(order_id, -1):
            moves.append(f"order {order_id} moved back to {to_status}")
        reached[order_id] = max(reached.get(order_id, -1), rank[to_status])
    return moves
