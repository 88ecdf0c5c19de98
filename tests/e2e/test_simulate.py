"""``fulfillment simulate`` against a running system, with a provider fault."""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.catalog import seed_catalog
from fulfillment.models import Order
from tests.support.chaos import in_background
from tests.support.system import wait_until


def kill_worker_once_orders_flow(system, db) -> None:
    def placed() -> int:
        with Session(db) as session:
            return session.scalar(select(func.count()).select_from(Order))

    wait_until(lambda: placed() >= 12, timeout=120, what="12 orders in")
    system.stop("worker", sig=signal.SIGKILL)
    system.start("worker")


@pytest.mark.slow
def test_simulate_places_orders_waits_for_them_and_verifies(system, db):
    with Session(db) as session, session.begin():
        seed_catalog(session)

    # a card mix with 3-D Secure cards, Stripe failing a fifth of its calls, and the
    # workers SIGKILLed mid-run
    chaos = in_background(lambda: kill_worker_once_orders_flow(system, db))
    result = system.fulfillment(
        "simulate", "--api", system.api_url, "--sandbox", system.sandbox_url,
        "-n", "40", "--customers", "4", "--decline-rate", "0.2", "--cancel-rate", "0.1",
        "--sca-rate", "0.2", "--fault", "stripe.error_rate=0.2", "--json", timeout=300,
    )  # fmt: skip
    chaos.join(timeout=5)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["orders"] == 40 and summary["unfinished"] == 0
    assert set(summary["by_status"]) <= {"delivered", "cancelled", "rejected", "refunded"}
    assert summary["accept_latency_seconds"]["n"] == 40
    mail = summary["time_to_seconds"]["confirmation_email"]
    # every e-mail is timed from its order's acceptance, to the moment SendGrid took it
    assert mail["n"] > 0 and 0 < mail["min"] <= mail["p50"] <= mail["max"] < 300
    assert summary["verify"]["ok"] is True
    assert sum(summary["three_d_secure"].values()) > 0, summary
