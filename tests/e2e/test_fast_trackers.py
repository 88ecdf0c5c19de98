"""Trackers that race their labels' commits: the sandbox's carrier moves each parcel
every 0.05 s, so its first events reach the API while ``ship_order`` is still
committing the shipment, and the sweeper is an hour away, so nothing rescues an event
that both sides missed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from fulfillment import stock
from fulfillment.catalog import seed_catalog
from fulfillment.models import Inventory, Order, OrderEvent, WebhookEvent
from tests.support.system import running_system

#: Orders in the run: enough for some events to overtake their commits (on the code
#: before the tracking-code lock, 150 orders left about 3 events unapplied).
ORDERS = 150


def stock_for_every_order(session: Session) -> None:
    for product_id in session.scalars(select(Inventory.product_id)).all():
        session.execute(*stock.movement(product_id, ORDERS, "restock"))
    session.execute(text("UPDATE inventory SET on_hand = on_hand + :n"), {"n": ORDERS})


@pytest.mark.slow
def test_every_tracker_event_is_applied_once_with_no_sweeper(tmp_path, database_url, db):
    # Given a system whose carrier moves parcels every 0.05 s and whose sweeper waits
    # an hour, and stock for every order
    fast = {"sandbox": ["sandbox", "--tracker-step-seconds", "0.05", "--seed", "7"]}
    with running_system(tmp_path, database_url=database_url, engine=db, commands=fast,
                        extra_env={"STALL_AFTER_SECONDS": "3600"}) as system:  # fmt: skip
        with Session(db) as session, session.begin():
            seed_catalog(session)
            stock_for_every_order(session)

        # When storefront traffic places the orders, with good cards only
        result = system.fulfillment(
            "simulate", "--api", system.api_url, "--sandbox", system.sandbox_url,
            "-n", str(ORDERS), "--customers", "10", "--decline-rate", "0", "--json",
            "--timeout", "120", timeout=300,
        )  # fmt: skip

    # Then every order is delivered, every tracker event applied, none by the sweeper
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["by_status"] == {"delivered": ORDERS}
    assert summary["verify"]["ok"] is True, summary["verify"]
    with Session(db) as session:
        unapplied = select(func.count()).where(WebhookEvent.processed_at.is_(None))
        assert session.scalar(unapplied) == 0
        delivered = select(func.count()).where(Order.delivered_at.is_not(None))
        assert session.scalar(delivered) == ORDERS
        rescued = select(func.count()).where(OrderEvent.step == "sweeper")
        assert session.scalar(rescued) == 0
