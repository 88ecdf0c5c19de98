"""The happy path with RabbitMQ as the broker (the scale-out option), on the RabbitMQ
these machines run on loopback. Redis stays the API's readiness dependency."""

from __future__ import annotations

import asyncio
import os

import pytest

from fulfillment.settings import load_settings
from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.traffic import mails_by_kind, place_orders
from workers.broker import create_broker
from workers.queues import ALL

#: The RabbitMQ on loopback (guest/guest, default vhost) unless CI says otherwise.
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def empty_rabbitmq(redis_url):
    """Queues emptied of anything an earlier run left; fails (never skips) without RabbitMQ."""
    broker = create_broker(load_settings(broker_url=AMQP_URL, redis_url=redis_url))
    for queue in ALL:
        broker.declare_queue(queue, ensure=True)
        broker.flush(queue)
    broker.close()


@pytest.mark.slow
@pytest.mark.system_env(BROKER_URL=AMQP_URL)
def test_orders_complete_with_rabbitmq_as_the_broker(empty_rabbitmq, system, db):
    product = add_product(db, on_hand=50)
    cards = ["pm_card_visa"] * 8 + ["pm_card_chargeDeclined"] * 2

    asyncio.run(place_orders(system.api_url, product, cards))

    assert system.wait_all_terminal(expected=10, timeout=120) == {"delivered": 8, "cancelled": 2}
    wait_until(lambda: mails_by_kind(system.sandbox_url)["delivered"] == 8, timeout=30,
               what="the delivery e-mails")  # fmt: skip
    result = system.fulfillment("verify")
    assert result.returncode == 0, result.stdout + result.stderr
