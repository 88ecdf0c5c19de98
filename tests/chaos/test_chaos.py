"""Kills, restarts and outages while orders flow. Afterwards every order is terminal and
``fulfillment verify`` (one charge per paid order, refunds for cancelled paid orders,
stock equal to what the orders say, no duplicate e-mails, nothing stalled) is clean."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time

import pytest
import requests

from tests.support.chaos import in_background, verify_clean
from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.traffic import place_orders

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"


@pytest.mark.slow
def test_orders_accepted_while_the_broker_is_down_all_complete(system, db):
    # Given Redis (the broker) is down
    product = add_product(db, on_hand=100)
    system.redis.kill()
    assert requests.get(f"{system.api_url}/readyz", timeout=5).status_code == 503

    # When orders come in, they are still accepted: the outbox is in PostgreSQL
    orders = asyncio.run(place_orders(system.api_url, product, [VISA] * 20))
    assert len(orders) == 20
    time.sleep(2)  # the outage goes on a little; nothing can move meanwhile
    assert system.order_statuses() == {"pending": 20}

    # Then, once Redis is back, every order completes
    system.redis.start()
    assert system.wait_all_terminal(expected=20, timeout=120) == {"delivered": 20}
    verify_clean(system)


@pytest.mark.slow
def test_redis_restarted_mid_flow_loses_queued_messages_but_no_order(system, db):
    # Given orders flowing while Redis, which keeps nothing on disk, is killed and restarted
    product = add_product(db, on_hand=300)
    cards = [DECLINED if i % 4 == 0 else VISA for i in range(120)]

    def restart_redis() -> None:
        time.sleep(1.5)
        system.redis.kill()
        time.sleep(1.0)
        system.redis.start()

    chaos = in_background(restart_redis)
    asyncio.run(place_orders(system.api_url, product, cards))
    chaos.join()

    # Then the database (the source of truth) and the sweeper bring every order home
    assert system.wait_all_terminal(expected=120, timeout=240) == {"delivered": 90, "cancelled": 30}
    verify_clean(system)


@pytest.mark.slow
def test_workers_killed_repeatedly_while_200_orders_flow(system, db):
    # Given 200 orders, some declined, and a chaos monkey SIGKILLing worker processes
    product = add_product(db, on_hand=1000)
    cards = [DECLINED if i % 5 == 0 else VISA for i in range(200)]
    stop = threading.Event()
    kills = []
    rng = random.Random(42)

    def monkey() -> None:
        while not stop.wait(rng.uniform(1.0, 2.5)):
            pids = system.worker_pids()
            if pids:
                victim = rng.choice(pids)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

    chaos = in_background(monkey)
    try:
        asyncio.run(place_orders(system.api_url, product, cards))
        wait_until(lambda: len(kills) >= 4, timeout=60, what="four kills")
    finally:
        stop.set()
        chaos.join()

    # Then every order is terminal, charged once, stock and e-mails consistent
    statuses = system.wait_all_terminal(expected=200, timeout=300)
    assert statuses == {"delivered": 160, "cancelled": 40}, statuses
    verify_clean(system)


@pytest.mark.slow
def test_a_provider_outage_with_faults_and_duplicate_webhooks(system, db):
    # Given Stripe fails a third of calls and the sandbox sends webhooks twice, out of order
    product = add_product(db, on_hand=200)
    system.faults(stripe={"error_rate": 0.3}, easypost={"error_rate": 0.2},
                  **{"*": {"webhook_duplicate_rate": 0.5, "webhook_reorder_rate": 0.3}})  # fmt: skip
    cards = [DECLINED if i % 6 == 0 else VISA for i in range(60)]

    asyncio.run(place_orders(system.api_url, product, cards))

    statuses = system.wait_all_terminal(expected=60, timeout=240)
    assert statuses == {"delivered": 50, "cancelled": 10}, statuses
    system.clear_faults()  # verify reads the providers' own records
    verify_clean(system)
