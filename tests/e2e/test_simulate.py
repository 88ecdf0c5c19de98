"""``fulfillment simulate`` against a running system, with a provider fault."""

from __future__ import annotations

import json

import pytest

from fulfillment.catalog import seed_catalog


@pytest.mark.slow
def test_simulate_places_orders_waits_for_them_and_verifies(system, db):
    from sqlalchemy.orm import Session

    with Session(db) as session, session.begin():
        seed_catalog(session)

    result = system.fulfillment(
        "simulate", "--api", system.api_url, "--sandbox", system.sandbox_url,
        "-n", "40", "--customers", "4", "--decline-rate", "0.2", "--cancel-rate", "0.1",
        "--fault", "stripe.error_rate=0.2", "--json", timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["orders"] == 40 and summary["unfinished"] == 0
    assert set(summary["by_status"]) <= {"delivered", "cancelled", "rejected", "refunded"}
    assert summary["accept_latency_seconds"]["n"] == 40
    mail = summary["time_to_seconds"]["confirmation_email"]
    # every e-mail is timed from its order's acceptance, to the moment SendGrid took it
    assert mail["n"] > 0 and 0 < mail["min"] <= mail["p50"] <= mail["max"] < 300
    assert summary["verify"]["ok"] is True
