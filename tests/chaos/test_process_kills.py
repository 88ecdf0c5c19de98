"""The API and the scheduler (outbox relay, sweeper) SIGKILLed while orders come in,
then started again as the system starts them. Every order the API accepted ends
terminal, and nothing happens twice: the storefront retries with the same
Idempotency-Key, so an order the dead API committed but never answered is answered
from the stored response."""

from __future__ import annotations

import asyncio
import signal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import Order
from tests.support.chaos import (
    backward_moves,
    in_background,
    labels_per_order,
    place,
    verify_clean,
)
from tests.support.storefront import add_product
from tests.support.system import wait_until

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"


def order_count(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Order))


def kill_and_restart(system, name: str, *, at: int, restart_at: int | None = None) -> None:
    """SIGKILL ``name`` (its whole process group) once ``at`` orders are in, and start it
    again at once or, with ``restart_at``, once that many are in."""
    for count in (at, restart_at):
        if count:
            wait_until(lambda n=count: order_count(system.engine) >= n, timeout=60,
                       what=f"{count} orders in")  # fmt: skip
        if count == at:
            system.stop(name, sig=signal.SIGKILL)
    system.start(name)


def assert_each_order_once_and_done(system, load, cards: list[str]) -> None:
    assert len(load.accepted) == len(cards)
    assert order_count(system.engine) == len(cards)  # no order placed twice
    declined = cards.count(DECLINED)
    statuses = system.wait_all_terminal(expected=len(cards), timeout=180)
    assert statuses == {"delivered": len(cards) - declined, "cancelled": declined}, statuses
    assert max(labels_per_order(system.sandbox_url).values()) == 1  # no order shipped twice
    assert backward_moves(system.engine) == []
    verify_clean(system)


@pytest.mark.slow
def test_api_killed_mid_load_every_accepted_order_completes_once(system, db):
    # Given orders coming in, a fifth of them declined
    product = add_product(db, on_hand=200)
    cards = [DECLINED if i % 5 == 0 else VISA for i in range(60)]

    # When the API is SIGKILLed mid-load and started again
    chaos = in_background(lambda: kill_and_restart(system, "api", at=15))
    load = asyncio.run(place([system.api_url], product, cards, per_second=15))
    chaos.join()

    # Then the storefront saw lost connections, and every order it placed completes once
    assert load.answers[0] > 0, load.answers
    assert load.answers[500] == 0, load.answers
    assert_each_order_once_and_done(system, load, cards)


@pytest.mark.slow
def test_scheduler_killed_mid_load_every_accepted_order_completes_once(system, db):
    # Given orders coming in, a fifth of them declined
    product = add_product(db, on_hand=200)
    cards = [DECLINED if i % 5 == 0 else VISA for i in range(60)]

    # When the scheduler (the outbox relay) is SIGKILLed mid-load, and started again
    # once orders have piled up in the outbox behind it
    chaos = in_background(lambda: kill_and_restart(system, "scheduler", at=15, restart_at=35))
    load = asyncio.run(place([system.api_url], product, cards, per_second=15))
    chaos.join()

    # Then every accepted order completes once
    assert_each_order_once_and_done(system, load, cards)
