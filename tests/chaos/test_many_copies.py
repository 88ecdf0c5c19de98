"""Several copies of every process on one PostgreSQL and one Redis, as when the system
runs on more than one machine: two APIs, two schedulers (outbox relay and sweeper, each
pass taking its rows with SKIP LOCKED) and three worker processes. Orders go to both
APIs in turn, customers cancel some, and every webhook reaches both APIs, the providers
sending some twice and out of order. Nothing may happen twice."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import requests

from fulfillment.settings import SANDBOX_EASYPOST_WEBHOOK_SECRET, SANDBOX_STRIPE_WEBHOOK_SECRET
from sandbox.webhooks import easypost_signature, stripe_signature
from tests.support.chaos import backward_moves, in_background, labels_per_order, place, verify_clean
from tests.support.storefront import add_product
from tests.support.system import COMMANDS, running_system

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"
#: One process per ``fulfillment worker``, so three of them make three worker processes.
ONE_WORKER_PROCESS = {"worker": [*COMMANDS["worker"][:1], "--processes", "1", "--threads", "4"]}


@pytest.fixture
def system(tmp_path, database_url, db):
    with running_system(tmp_path, database_url=database_url, engine=db,
                        commands=ONE_WORKER_PROCESS) as running:  # fmt: skip
        yield running


def relay_webhooks(system, api_url: str, stop: threading.Event) -> list[int]:
    """Send every event the sandbox delivered to the first API on to ``api_url`` as
    well, signed afresh, until ``stop``; answers the statuses the second API gave."""
    sent: set[tuple[str, str]] = set()
    answers: list[int] = []
    sign = {
        "stripe": lambda body: {"Stripe-Signature": stripe_signature(body, SANDBOX_STRIPE_WEBHOOK_SECRET)},
        "easypost": lambda body: {"X-Hmac-Signature": easypost_signature(body, SANDBOX_EASYPOST_WEBHOOK_SECRET)},
    }  # fmt: skip
    while not stop.wait(0.3):
        log = requests.get(f"{system.sandbox_url}/_sandbox/webhooks", timeout=10).json()
        for delivery in log["deliveries"]:
            key = (delivery["provider"], delivery["event_id"])
            if key in sent or delivery["status"] != "delivered" or key[0] not in sign:
                continue  # (SendGrid's event batches are signed with a key of their own)
            sent.add(key)
            body = json.dumps(delivery["event"], separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", **sign[key[0]](body)}
            url = f"{api_url}/v1/webhooks/{key[0]}"
            answers.append(requests.post(url, data=body, headers=headers, timeout=10).status_code)
    return answers


@pytest.mark.slow
def test_two_apis_two_schedulers_three_workers_do_nothing_twice(system, db):
    # Given a second API, a second scheduler and two more worker processes, and
    # providers that send a third of their webhooks twice and some out of order
    second_api = system.start_copy("api", "api-2")
    system.start_copy("scheduler", "scheduler-2")
    system.start_copy("worker", "worker-2")
    system.start_copy("worker", "worker-3")
    system.wait_http(f"{second_api}/readyz")
    system.faults(**{"*": {"webhook_duplicate_rate": 0.3, "webhook_reorder_rate": 0.2}})
    product = add_product(db, on_hand=500)
    cards = [DECLINED if i % 6 == 0 else VISA for i in range(80)]

    # When orders go to both APIs, every fifth cancelled by its customer at once, and
    # every webhook reaches both APIs
    stop, relayed = threading.Event(), []
    relay = in_background(lambda: relayed.extend(relay_webhooks(system, second_api, stop)))
    load = asyncio.run(place([system.api_url, second_api], product, cards, cancel_every=5))
    try:
        statuses = system.wait_all_terminal(expected=len(cards), timeout=240)
    finally:
        stop.set()
        relay.join()

    # Then every order is terminal: declined and cancelled ones cancelled, the rest
    # delivered; each order placed, labelled and charged once, no e-mail sent twice
    assert len(load.accepted) == len(cards) == sum(statuses.values())
    assert set(load.cancels.values()) <= {200, 409}, load.cancels
    assert load.answers[500] == 0, load.answers
    final = system.order_statuses()
    cancelled = {o for o, answer in load.cancels.items() if answer == 200}
    declined = {o for o, card in load.accepted.items() if card == DECLINED}
    assert final == {"cancelled": len(cancelled | declined),
                     "delivered": len(cards) - len(cancelled | declined)}, final  # fmt: skip
    assert cancelled, load.cancels  # most cancels come while the order is still early
    assert max(labels_per_order(system.sandbox_url).values()) == 1
    assert relayed and set(relayed) == {200}, relayed
    assert backward_moves(db) == []
    assert [n for n, p in system.processes.items() if p.poll() is not None] == []  # all up
    system.clear_faults()
    verify_clean(system)
