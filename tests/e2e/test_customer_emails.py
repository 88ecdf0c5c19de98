"""The e-mails a customer reads: an order delivered through the whole system (API,
workers, scheduler, sandbox) and the mails SendGrid rendered from the synced templates."""

from __future__ import annotations

import uuid

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Shipment
from fulfillment.order_number import order_number
from pipelines.mail.data import tracking_url
from tests.support.storefront import ADDRESS, PASSWORD, add_product
from tests.support.system import wait_until

SENDGRID_AUTH = {"Authorization": "Bearer SG.support"}


def place_order(api: str, lines: list[tuple[uuid.UUID, int]]) -> str:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    account = {"email": email, "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"}
    assert requests.post(f"{api}/v1/users", json=account, timeout=10).status_code == 201
    login = requests.post(f"{api}/v1/auth/login", json={"email": email, "password": PASSWORD},
                          timeout=10)  # fmt: skip
    token = login.json()["access_token"]
    body = {"items": [{"product_id": str(p), "quantity": q} for p, q in lines],
            "shipping_address": ADDRESS, "payment_method": "pm_card_visa"}  # fmt: skip
    placed = requests.post(f"{api}/v1/orders", json=body, timeout=10, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert placed.status_code == 201, placed.text
    return placed.json()["id"]


def rendered_mails(sandbox_url: str, order_id: str) -> dict[str, dict] | None:
    """The order's mails by kind once each of the three is rendered, else None."""
    query = {"query": f"unique_args['order_id']=\"{order_id}\"", "limit": 10}
    found = requests.get(f"{sandbox_url}/sendgrid/v3/messages", params=query,
                         headers=SENDGRID_AUTH, timeout=10).json()["messages"]  # fmt: skip
    mails = {m["custom_args"]["kind"]: m["rendered"] for m in found if m.get("rendered")}
    return mails if {"order_confirmed", "shipped", "delivered"} <= set(mails) else None


@pytest.mark.slow
def test_a_delivered_orders_mails_show_its_number_lines_total_and_tracking(system, db):
    # Given an order of two mugs and a teapot
    mug = add_product(db, name="Blue Mug", price="12.50")
    teapot = add_product(db, name="Cast Iron Teapot", price="30.00")
    order_id = place_order(system.api_url, [(mug, 2), (teapot, 1)])

    # When it is delivered
    mails = wait_until(lambda: rendered_mails(system.sandbox_url, order_id), timeout=60,
                       what="the order's three mails, rendered", on_fail=system.logs)  # fmt: skip

    # Then the confirmation names the order, each line with its quantity, and the total
    confirmed = mails["order_confirmed"]
    number = order_number(order_id)
    assert confirmed["subject"] == f"Order {number} is confirmed"
    for text in (confirmed["plain"], confirmed["html"]):
        assert number in text and "Hello Ada" in text and "55.00 USD" in text
    assert "- Blue Mug x 2 at 12.50 USD = 25.00 USD" in confirmed["plain"]
    assert "- Cast Iron Teapot x 1 at 30.00 USD = 30.00 USD" in confirmed["plain"]
    assert '<td>Blue Mug</td><td align="right">2</td>' in confirmed["html"]
    assert "SW1Y 4JH London" in confirmed["plain"]

    # and the shipped and delivered mails carry the tracking code and the carrier's link
    with Session(db) as session:
        shipment = session.scalar(select(Shipment).where(Shipment.order_id == order_id))
    link = tracking_url(shipment.carrier, shipment.tracking_code)
    assert link is not None
    for kind in ("shipped", "delivered"):
        assert shipment.tracking_code in mails[kind]["plain"]
        assert f"Track your parcel: {link}" in mails[kind]["plain"]
        assert f'href="{link}"' in mails[kind]["html"]
    assert mails["shipped"]["subject"] == f"Order {number} is on its way"
