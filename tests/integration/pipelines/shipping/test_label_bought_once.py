"""One label per order, however late the retry: the EasyPost gateway keeps the shipment
it made for an order (committed, ``carrier_shipments``) before it buys, so a retry or a
sweeper re-drive long after a purchase whose commit was lost - hundreds of other
shipments later, past anything EasyPost's newest-first list shows in a few pages -
finds that label and buys none, and a cancel voids that one label. On a real
PostgreSQL, with the workers' own wiring (``build_deps``) and the sandbox's EasyPost
through the official SDK; payments and mail are in-memory doubles."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from api.app import create_app
from fulfillment import messages as m
from fulfillment.models import Order, OrderEvent
from fulfillment.settings import Settings
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.deps import Deps
from pipelines.outcome import SUCCESS
from pipelines.payments.payment import request_payment
from pipelines.shipping.labels import void_label
from pipelines.stock.reservation import reserve_inventory
from tests.support.fakes import FakeMailer, FakePayments
from tests.support.interleave import hold, in_thread
from tests.support.sandbox import RunningSandbox, running_sandbox, wired_to
from tests.support.storefront import add_product, bearer, customer_token
from workers.wiring import build_deps

GOOD = {"name": "Ada Lovelace", "line1": "417 Montgomery Streat", "city": "SF",
        "state": "CA", "postal_code": "94104", "country": "US"}  # fmt: skip
#: Other orders' shipments made between the lost commit and the retry: more than the
#: three pages of 100 the gateway used to read (15 s of traffic at 20 orders a second).
TRAFFIC = 320
KEY = {"Authorization": "Bearer EZTK_test"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def wired(settings: Settings, sandbox: RunningSandbox) -> Settings:
    return wired_to(settings, sandbox)


@pytest.fixture
def worker(wired: Settings, db) -> Iterator[Any]:
    """A worker process's dependencies, as ``fulfillment worker`` wires them (each call
    a new process: nothing remembered in memory), with in-memory payments and mail."""
    built: list[Deps] = []
    stripe = FakePayments()  # one Stripe, whichever process calls it

    def start() -> Deps:
        deps = build_deps(wired, pool_size=2)
        built.append(deps)
        return dataclasses.replace(deps, payments=stripe, mailer=FakeMailer(),
                                   sent_mail=None)  # fmt: skip

    yield start
    for deps in built:
        deps.sessions.kw["bind"].dispose()


@pytest.fixture
async def client(aiohttp_client, wired: Settings, db):
    return await aiohttp_client(create_app(wired))


async def packed_order(client, db, deps: Deps) -> tuple[str, str]:
    """A customer's order, reserved, charged and packed: its label is next."""
    token = await customer_token(client)
    body = {"items": [{"product_id": str(add_product(db, on_hand=5)), "quantity": 1}],
            "shipping_address": GOOD, "payment_method": "pm_card_visa"}  # fmt: skip
    response = await client.post("/v1/orders", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    order_id = (await response.json())["id"]
    reserve_inventory(deps, order_id)
    request_payment(deps, order_id)
    assert status(deps, order_id) == S.FULFILLING
    return order_id, token


def status(deps: Deps, order_id: str) -> S:
    with deps.sessions() as session:
        return S(session.get(Order, uuid.UUID(order_id)).status)


def timeline(deps: Deps, order_id: str) -> list[tuple[str, str | None, str | None]]:
    with deps.sessions() as session:
        events = session.query(OrderEvent).filter_by(order_id=uuid.UUID(order_id))
        return [(e.step, e.outcome, e.error) for e in events.order_by(OrderEvent.id)]


def other_orders_ship(sandbox: RunningSandbox, count: int) -> None:
    """``count`` shipments of other orders, made at EasyPost after ours."""
    with requests.Session() as http:
        for _ in range(count):
            shipment = {"reference": str(uuid.uuid4()), "to_address": {
                "street1": "1 Other St", "city": "SF", "state": "CA", "zip": "94104",
                "country": "US"}, "from_address": {"street1": "2 Warehouse Rd", "city": "SF",
                "state": "CA", "zip": "94104", "country": "US"}, "parcel": {"weight": 12}}  # fmt: skip
            answer = http.post(f"{sandbox.url}/easypost/v2/shipments", headers=KEY,
                               json={"shipment": shipment}, timeout=5)  # fmt: skip
            answer.raise_for_status()


def shipments_of(sandbox: RunningSandbox, reference: str) -> list[dict[str, Any]]:
    """Every shipment EasyPost holds for ``reference``, paging through all of them."""
    found, before = [], None
    while True:
        query = {"page_size": 100, **({"before_id": before} if before else {})}
        page = requests.get(f"{sandbox.url}/easypost/v2/shipments", params=query, headers=KEY,
                            timeout=5).json()  # fmt: skip
        found += [s for s in page["shipments"] if s["reference"] == reference]
        if not page["has_more"]:
            return found
        before = page["shipments"][-1]["id"]


def requested(sandbox: RunningSandbox, suffix: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("easypost") if r["path"].endswith(suffix)]


async def test_a_retry_long_after_a_lost_label_commit_finds_that_label_and_buys_none(
    client, db, sandbox, worker
):
    # Given an order whose first try bought its label, then died before its commit
    first = worker()
    order_id, _ = await packed_order(client, db, first)
    label = first.carrier.ship(order_id=order_id, address=GOOD, lookup=False)
    # and hundreds of other orders shipped since
    other_orders_ship(sandbox, TRAFFIC)

    # When the step runs again, in another worker process (a retry, or the sweeper)
    later = worker()
    outcome = run_steps(later, m.SHIP_ORDER, order_id=order_id)
    assert outcome == SUCCESS, "\n".join(map(str, timeline(later, order_id)))

    # Then the order shipped with the label bought first, and no second one was bought
    assert status(later, order_id) == S.SHIPPED
    (shipment,) = [s for s in shipments_of(sandbox, order_id) if s["postage_label"]]
    assert shipment["id"] == label.shipment_id
    assert len(requested(sandbox, "/buy")) == 1


async def test_a_cancel_long_after_a_lost_label_commit_voids_that_one_label(
    client, db, sandbox, worker
):
    # Given an order whose label was bought but whose commit was lost, hundreds of
    # shipments ago, and which its customer then cancelled
    first = worker()
    order_id, token = await packed_order(client, db, first)
    label = first.carrier.ship(order_id=order_id, address=GOOD, lookup=False)
    other_orders_ship(sandbox, TRAFFIC)
    response = await client.post(f"/v1/orders/{order_id}/cancel", headers=bearer(token))
    assert response.status == 200, await response.text()

    # When the void message runs in another worker process (twice: at least once)
    later = worker()
    assert run_steps(later, m.VOID_LABEL, order_id=order_id) == SUCCESS
    void_label(later, order_id)

    # Then that label's refund is asked for, once, and nothing else was bought
    (refund,) = requested(sandbox, "/refund")
    assert refund["path"].endswith(f"/shipments/{label.shipment_id}/refund")
    assert later.carrier.label_refund_status(label.shipment_id) == "submitted"
    assert len(requested(sandbox, "/buy")) == 1


def test_the_sandbox_lists_shipments_as_easypost_does_100_a_page_newest_first(sandbox, wired):
    # Given more shipments than a page holds
    other_orders_ship(sandbox, 120)

    # When a client asks for more than EasyPost's page limit
    page = requests.get(f"{sandbox.url}/easypost/v2/shipments", params={"page_size": 500},
                        headers=KEY, timeout=5).json()  # fmt: skip

    # Then it gets 100, newest first, and is told there are more
    assert len(page["shipments"]) == 100 and page["has_more"] is True
    stamps = [s["created_at"] for s in page["shipments"]]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("point", ["easypost.shipment_created", "easypost.shipment_kept"])
def test_two_tries_of_one_return_label_at_once_buy_one_label(sandbox, worker, point):
    # Given two copies of a return's label message, in two worker processes (the return
    # label step holds no lock across the purchase), the first held at ``point``
    first, second = worker(), worker()
    return_id = str(uuid.uuid4())
    with hold(point) as held:
        racing = in_thread(lambda: first.carrier.ship_return(return_id=return_id, address=GOOD))
        held.wait_reached()

        # When the second one runs to its end meanwhile
        label = second.carrier.ship_return(return_id=return_id, address=GOOD)
        held.release()
        other = racing.result(timeout=30)

    # Then both answer the one label bought
    assert other == label
    (bought,) = [s for s in shipments_of(sandbox, f"return_{return_id}") if s["postage_label"]]
    assert bought["id"] == label.shipment_id
