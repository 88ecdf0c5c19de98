"""PostgreSQL, the source of truth, stopped and started again while orders come in. The
system runs on an embedded PostgreSQL of this test's own (the shared server is never
stopped): while it is down ``POST /v1/orders`` is a 503 with Retry-After, and once it is
back every order the API accepted completes."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine

from fulfillment import migrate
from fulfillment.embedded import EmbeddedPostgres
from fulfillment.settings import to_sqlalchemy_url
from tests.support.chaos import backward_moves, in_background, place, verify_clean
from tests.support.storefront import PASSWORD, add_product, order_body
from tests.support.system import System, running_system, wait_until

VISA, DECLINED = "pm_card_visa", "pm_card_chargeDeclined"


@pytest.fixture
def own_postgres() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """An embedded PostgreSQL, migrated, that this test may stop. Outside pytest's
    private temporary root: the server runs as a system user of its own."""
    var_dir = Path(tempfile.mkdtemp(prefix="fulfillment-chaos-pg-"))
    postgres = EmbeddedPostgres(var_dir)
    try:
        url = postgres.start()
        migrate.upgrade(url)
        yield postgres, url
    finally:
        postgres.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture
def system(tmp_path, own_postgres) -> Iterator[System]:
    _, url = own_postgres
    engine = create_engine(to_sqlalchemy_url(url), pool_pre_ping=True)
    try:
        with running_system(tmp_path, database_url=url, engine=engine) as running:
            yield running
    finally:
        engine.dispose()


def customer_token(api: str) -> dict[str, str]:
    body = {"email": "probe@example.com", "password": PASSWORD,
            "first_name": "Pat", "last_name": "Probe"}  # fmt: skip
    assert requests.post(f"{api}/v1/users", json=body, timeout=10).status_code == 201
    credentials = {"email": body["email"], "password": PASSWORD}
    login = requests.post(f"{api}/v1/auth/login", json=credentials, timeout=10)
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.mark.slow
def test_postgres_stopped_and_restarted_under_load_every_accepted_order_completes(
    system, own_postgres
):
    # Given orders coming in, a fifth of them declined
    postgres, _ = own_postgres
    product = add_product(system.engine, on_hand=200)
    probe = customer_token(system.api_url)
    cards = [DECLINED if i % 5 == 0 else VISA for i in range(50)]
    while_down: list[requests.Response] = []

    def stop_for_a_while() -> None:
        wait_until(lambda: sum(system.order_statuses().values()) >= 10, timeout=60,
                   what="ten orders in")  # fmt: skip
        postgres.stop()
        try:
            while_down.append(requests.post(f"{system.api_url}/v1/orders", timeout=15,
                                            json=order_body((product, 1)), headers=probe))  # fmt: skip
            wait_until(lambda: requests.get(f"{system.api_url}/readyz", timeout=15)
                       .status_code == 503, timeout=15, what="readyz 503")  # fmt: skip
        finally:
            postgres.start()

    # When PostgreSQL stops (a clean, fast shutdown) mid-load and starts again
    chaos = in_background(stop_for_a_while)
    load = asyncio.run(place([system.api_url], product, cards, per_second=8))
    chaos.join()

    # Then, while it was down, an order was refused with 503 and Retry-After
    (refused,) = while_down
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert int(refused.headers["Retry-After"]) > 0
    assert load.answers[503] > 0 and all(int(s) > 0 for s in load.retry_after), load.answers
    assert load.answers[500] == 0, load.answers
    # and afterwards every accepted order completes, each once, none ever moving back
    assert len(load.accepted) == len(cards)
    statuses = system.wait_all_terminal(expected=len(cards), timeout=180)
    assert statuses == {"delivered": 40, "cancelled": 10}, statuses
    assert backward_moves(system.engine) == []
    verify_clean(system)
