"""Stock at two locations through the whole system (real API, sandbox, workers,
scheduler, the real SDKs): an admin adds a location and counts stock there; a customer's
order no single location holds is reserved at both, one of its units is cancelled
before the saga reaches it, the rest ships, Stripe captures once for what is left, the
parcel is delivered, and a returned unit goes back on the shelf of the location it came
from; ``verify`` finds nothing wrong."""

from __future__ import annotations

import uuid

import pytest
import requests
import stripe
from sqlalchemy.orm import Session

from fulfillment.models import Order
from tests.chaos.test_capture_kill import captures_in_flight
from tests.e2e.test_merchant_webhooks import admin_headers
from tests.support.chaos import verify_clean
from tests.support.storefront import ADDRESS, PASSWORD, add_product
from tests.support.system import wait_until

BERLIN = {"name": "Lager Berlin", "line1": "Alexanderplatz 1", "city": "Berlin",
          "postal_code": "10178", "country": "DE"}  # fmt: skip


def customer_headers(api: str) -> dict[str, str]:
    email = f"shopper-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "first_name": "Sam", "last_name": "Shopper"}
    requests.post(f"{api}/v1/users", json=body, timeout=30).raise_for_status()
    login = requests.post(f"{api}/v1/auth/login", json={"email": email, "password": PASSWORD},
                          timeout=30)  # fmt: skip
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def call(method: str, url: str, headers: dict, body=None, status: int = 200) -> dict:
    response = requests.request(method, url, json=body, headers=headers, timeout=30)
    assert response.status_code == status, f"{method} {url}: {response.status_code} {response.text}"
    return response.json()


def levels(api: str, admin: dict, product) -> dict[str, tuple[int, int]]:
    items = call("GET", f"{api}/v1/admin/products/{product}/stock", admin)["items"]
    return {item["location_name"]: (item["on_hand"], item["reserved"]) for item in items}


def status_of(db, order_id: str) -> str:
    with Session(db) as session:
        return session.get(Order, uuid.UUID(order_id)).status


@pytest.mark.slow
def test_an_order_over_two_locations_is_reserved_cancelled_in_part_shipped_and_returned(system, db):
    api, admin = system.api_url, admin_headers(system)
    # Given a second location, mugs only at the default location and plates only in Berlin
    berlin = call("POST", f"{api}/v1/admin/locations", admin,
                  {"name": "Berlin", "address": BERLIN, "priority": 5}, status=201)["id"]  # fmt: skip
    mug, plate = add_product(db, on_hand=2), add_product(db, on_hand=0)
    call("PUT", f"{api}/v1/products/{plate}/stock", admin, {"on_hand": 3, "location_id": berlin})
    assert call("GET", f"{api}/v1/products/{plate}", {})["available"] == 3

    # When a customer orders 2 mugs and 2 plates while the workers are away, and cancels a
    # plate before any worker saw the order
    system.stop("worker")
    customer = customer_headers(api)
    body = {"items": [{"product_id": str(mug), "quantity": 2}, {"product_id": str(plate), "quantity": 2}],
            "shipping_address": dict(ADDRESS), "payment_method": "pm_card_visa"}  # fmt: skip
    order = call("POST", f"{api}/v1/orders", customer, body, status=201)
    cancelled = call("POST", f"{api}/v1/orders/{order['id']}/cancel", customer,
                     {"lines": [{"product_id": str(plate), "quantity": 1}]})  # fmt: skip
    assert cancelled["status"] == "pending" and cancelled["amount_cancelled"] == 1250
    system.start("worker")

    # Then the rest is reserved at the two locations that hold it, shipped and delivered
    wait_until(lambda: status_of(db, order["id"]) == "delivered", timeout=90,
               what="the order delivered", on_fail=system.order_statuses)  # fmt: skip
    seen = call("GET", f"{api}/v1/orders/{order['id']}", customer)
    assert sorted((p["location_id"] == berlin, [(line["product_id"], line["quantity"]) for line in p["lines"]])
                  for p in seen["packages"]) == [(False, [(str(mug), 2)]), (True, [(str(plate), 1)])]  # fmt: skip
    assert {p["status"] for p in seen["packages"]} == {"delivered"}
    assert levels(api, admin, mug)["Default"] == (0, 0)
    assert levels(api, admin, plate) == {"Default": (0, 0), "Berlin": (2, 0)}
    # and Stripe captured once, for the 3 units left
    wait_until(lambda: captures_in_flight(db) == 0, timeout=60, what="the capture settled")
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": system.sandbox_url})
    (intent,) = [i for i in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter()
                 if i.to_dict()["metadata"].get("order_id") == order["id"]]  # fmt: skip
    assert (intent.status, intent.amount_received) == ("succeeded", 3 * 1250)

    # When the customer returns the plate and the warehouse receives it
    back = call("POST", f"{api}/v1/orders/{order['id']}/returns", customer,
                {"lines": [{"product_id": str(plate), "quantity": 1}]}, status=201)  # fmt: skip
    call("POST", f"{api}/v1/admin/returns/{back['id']}/receive", admin,
         {"lines": [{"product_id": str(plate), "quantity": 1, "condition": "restock"}]})  # fmt: skip

    # Then it is back on the Berlin shelf it came from, and everything adds up
    assert levels(api, admin, plate) == {"Default": (0, 0), "Berlin": (3, 0)}
    verify_clean(system)
