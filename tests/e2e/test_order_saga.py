"""Orders through the whole system: real API, sandbox, dramatiq worker processes and
the scheduler, on PostgreSQL and Redis. Outcomes are read from the database and from
what the sandbox's Stripe and SendGrid recorded."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.support.steps import stock
from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.traffic import mails_by_kind, place_orders

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"


def verify_clean(system) -> None:
    result = system.fulfillment("verify")
    assert result.returncode == 0, result.stdout + result.stderr


def stock_of(engine, product_id) -> tuple[int, int]:
    return stock(engine, product_id)


@pytest.mark.slow
def test_a_hundred_orders_with_good_and_declined_cards(system, db):
    # Given 500 units and a hundred orders of 2, one in five with a declined card
    product = add_product(db, on_hand=500)
    cards = [DECLINED if i % 5 == 0 else VISA for i in range(100)]

    orders = asyncio.run(place_orders(system.api_url, product, cards, quantity=2))

    # Then every order ends: paid ones delivered, declined ones cancelled with stock back
    statuses = system.wait_all_terminal(expected=100)
    assert statuses == {"delivered": 80, "cancelled": 20}
    assert stock_of(db, product) == (500 - 80 * 2, 0)
    expected = {"order_confirmed": 80, "shipped": 80, "delivered": 80, "payment_failed": 20,
                "welcome": 5}  # fmt: skip
    wait_until(lambda: mails_by_kind(system.sandbox_url) == expected, timeout=30,
               what="every e-mail, once", on_fail=lambda: mails_by_kind(system.sandbox_url))  # fmt: skip
    assert len(orders) == 100
    verify_clean(system)


@pytest.mark.slow
def test_out_of_stock_orders_are_rejected_and_nothing_is_oversold(system, db):
    product = add_product(db, on_hand=10)

    asyncio.run(place_orders(system.api_url, product, [VISA] * 30, concurrency=30))

    statuses = system.wait_all_terminal(expected=30)
    assert statuses == {"delivered": 10, "rejected": 20}
    assert stock_of(db, product) == (0, 0)
    verify_clean(system)


@pytest.mark.slow
@pytest.mark.system_env(WORKER_MAX_RETRIES="40")  # the test's backoff is short: outlast 20 s
def test_a_payment_provider_down_for_20_seconds(system, db):
    # Given Stripe answers 503 to everything
    product = add_product(db, on_hand=100)
    system.faults(stripe={"error_rate": 1.0})
    asyncio.run(place_orders(system.api_url, product, [VISA] * 10))

    # When it comes back after 20 s
    time.sleep(20)  # the outage itself, not an assertion
    assert system.order_statuses().get("delivered", 0) == 0
    system.clear_faults()

    # Then every order completes, charged once
    assert system.wait_all_terminal(expected=10, timeout=120) == {"delivered": 10}
    verify_clean(system)


@pytest.mark.slow
@pytest.mark.system_env(WORKER_MAX_RETRIES="2", WORKER_MAX_BACKOFF_MS="300")
def test_retries_exhausted_dead_letter_then_replay_completes_them(system, db):
    # Given the carrier refuses every request with 503
    product = add_product(db, on_hand=100)
    system.faults(easypost={"error_rate": 1.0})
    orders = asyncio.run(place_orders(system.api_url, product, [VISA] * 3))

    # Then the shipping step dead-letters and the orders wait for an operator
    wait_until(lambda: system.order_statuses().get("needs_attention") == 3, timeout=90,
               what="3 orders needing attention", on_fail=system.logs)  # fmt: skip
    listing = system.fulfillment("dlq", "list", "--json")
    letters = json.loads(listing.stdout)
    # (the message that placed them reserves, charges and ships: it is what died)
    assert {letter["actor"] for letter in letters} == {"reserve_inventory"}
    assert {letter["kwargs"]["order_id"] for letter in letters} == set(orders)
    assert system.fulfillment("verify").returncode == 1  # verify reports them

    # When the fault clears and the operator replays the dead letters
    system.clear_faults()
    replay = system.fulfillment("dlq", "replay", "--all")
    assert replay.returncode == 0 and f"replayed {len(letters)}" in replay.stdout

    # Then they resume where they stopped and are delivered
    assert system.wait_all_terminal(expected=3, timeout=90) == {"delivered": 3}
    shown = system.fulfillment("orders", "show", next(iter(orders)))
    assert "needs_attention" in shown.stdout and "redrive" in shown.stdout
    assert "0 dead letter(s)" in system.fulfillment("dlq", "list").stdout
    verify_clean(system)
