"""Stock at two locations through the whole system (real API, sandbox, workers,
scheduler, the real SDKs): an admin adds a location and counts stock there; a customer's
order no single location holds is reserved at both and split into two packages; the
first parcel leaves (and captures the whole amount, once) and is delivered while the
carrier refuses the second label; the customer cancels a unit of the waiting package
(refunded by its line), an operator resumes the order, the rest ships and arrives; a
returned unit of the first parcel goes back on the shelf of the location it came from.
``verify`` finds nothing wrong, and Stripe holds one capture and the two refunds."""

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
def test_two_packages_one_delivered_before_the_other_a_waiting_line_cancelled_one_returned(
    system, db
):
    api, admin = system.api_url, admin_headers(system)
    # Given a second location, mugs only at the default location and plates only in Berlin
    berlin = call("POST", f"{api}/v1/admin/locations", admin,
                  {"name": "Berlin", "address": BERLIN, "priority": 5}, status=201)["id"]  # fmt: skip
    mug, plate = add_product(db, on_hand=2), add_product(db, on_hand=0)
    call("PUT", f"{api}/v1/products/{plate}/stock", admin, {"on_hand": 3, "location_id": berlin})
    assert call("GET", f"{api}/v1/products/{plate}", {})["available"] == 3
    # and a carrier that will refuse the second label bought (the first goes through)
    system.faults(easypost={"fail_after": 1, "fail_next": 1, "error_status": 422,
                            "paths": ["POST /easypost/v2/shipments$"]})  # fmt: skip

    # When a customer orders 2 mugs and 2 plates
    customer = customer_headers(api)
    body = {"items": [{"product_id": str(mug), "quantity": 2}, {"product_id": str(plate), "quantity": 2}],
            "shipping_address": dict(ADDRESS), "payment_method": "pm_card_visa"}  # fmt: skip
    order = call("POST", f"{api}/v1/orders", customer, body, status=201)
    url = f"{api}/v1/orders/{order['id']}"

    # Then one parcel leaves and is delivered, the other waits for an operator
    wait_until(lambda: status_of(db, order["id"]) == "needs_attention", timeout=60,
               what="the second label refused", on_fail=system.order_statuses)  # fmt: skip
    wait_until(lambda: {p["status"] for p in call("GET", url, customer)["packages"]}
               == {"delivered", "pending"}, timeout=60, what="the first parcel delivered")  # fmt: skip
    packages = call("GET", url, customer)["packages"]
    (first,) = [p for p in packages if p["status"] == "delivered"]
    (waiting,) = [p for p in packages if p["status"] == "pending"]
    sent, kept = first["lines"][0]["product_id"], waiting["lines"][0]["product_id"]
    assert {sent, kept} == {str(mug), str(plate)}
    # and the first parcel captured the whole amount, once
    wait_until(lambda: captures_in_flight(db) == 0, timeout=60, what="the capture settled")
    assert intent_of(system, order["id"]).amount_received == 4 * 1250

    # When the customer cancels one unit of the waiting package, and one that left
    cancelled = call("POST", f"{url}/cancel", customer,
                     {"lines": [{"product_id": kept, "quantity": 1}]})  # fmt: skip
    call("POST", f"{url}/cancel", customer, {"lines": [{"product_id": sent, "quantity": 1}]},
         status=409)  # fmt: skip

    # Then the waiting package shrinks and the unit is refunded by its line
    (shrunk,) = [p for p in cancelled["packages"] if p["id"] == waiting["id"]]
    assert shrunk["lines"] == [{"product_id": kept, "quantity": 1}]
    wait_until(lambda: refunded_at_stripe(system, order["id"]) == [1250], timeout=60,
               what="the cancelled unit refunded")  # fmt: skip

    # When an operator resumes the order, the rest ships and arrives
    call("POST", f"{api}/v1/admin/orders/{order['id']}/resume", admin)
    wait_until(lambda: status_of(db, order["id"]) == "delivered", timeout=90,
               what="the order delivered", on_fail=system.order_statuses)  # fmt: skip
    seen = call("GET", url, customer)
    assert {p["status"] for p in seen["packages"]} == {"delivered"}
    shipped = {sent: 2, kept: 1}  # units that left each shelf (one of kept was cancelled)
    assert levels(api, admin, mug)["Default"] == (2 - shipped[str(mug)], 0)
    assert levels(api, admin, plate) == {"Default": (0, 0), "Berlin": (3 - shipped[str(plate)], 0)}

    # When the customer returns a unit of the first parcel and the warehouse receives it
    back = call("POST", f"{url}/returns", customer,
                {"lines": [{"product_id": sent, "quantity": 1}]}, status=201)  # fmt: skip
    call("POST", f"{api}/v1/admin/returns/{back['id']}/receive", admin,
         {"lines": [{"product_id": sent, "quantity": 1, "condition": "restock"}]})  # fmt: skip

    # Then it is back on the shelf it came from, Stripe holds one capture of the whole
    # amount and the two refunds, and everything adds up
    home, counted = ("Berlin", 3) if sent == str(plate) else ("Default", 2)
    assert levels(api, admin, uuid.UUID(sent))[home] == (counted - 2 + 1, 0)
    wait_until(lambda: refunded_at_stripe(system, order["id"]) == [1250, 1250], timeout=60,
               what="the returned unit refunded")  # fmt: skip
    intent = intent_of(system, order["id"])
    assert (intent.status, intent.amount_received) == ("succeeded", 4 * 1250)
    verify_clean(system)


def stripe_client(system) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", base_addresses={"api": system.sandbox_url})


def intent_of(system, order_id: str):
    (intent,) = [i for i in stripe_client(system).v1.payment_intents.list({"limit": 100})
                 .auto_paging_iter() if i.to_dict()["metadata"].get("order_id") == order_id]  # fmt: skip
    return intent


def refunded_at_stripe(system, order_id: str) -> list[int]:
    """The amounts of the order's succeeded refunds at Stripe, smallest first."""
    intent = intent_of(system, order_id)
    refunds = stripe_client(system).v1.refunds.list({"payment_intent": intent.id, "limit": 100})
    return sorted(r["amount"] for r in refunds.data if r["status"] == "succeeded")
