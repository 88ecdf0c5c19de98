"""``POST /v1/checkout/quotes`` on the real app and database, with the real EasyPost and
Stripe SDKs against the sandbox: the lines priced from the catalogue, an option per
carrier service with Stripe Tax's figures for the lines and that shipping, stored for its
customer; the merchant's services, handling and free shipping; a carrier down (the flat
estimate, or 503) and Stripe Tax down (503, nothing stored); bad input a 4xx."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import Quote
from tests.support.storefront import add_product, bearer, customer_token

NEW_YORK = {"name": "Grace Hopper", "line1": "350 5th Ave", "city": "New York",
            "state": "NY", "postal_code": "10118", "country": "US"}  # fmt: skip
CALIFORNIA = {**NEW_YORK, "line1": "1 Market St", "city": "San Francisco", "state": "CA",
              "postal_code": "94105"}  # fmt: skip


async def quote(client, token: str, items, address=NEW_YORK):
    body = {"items": [{"product_id": str(p), "quantity": q} for p, q in items],
            "shipping_address": address}  # fmt: skip
    response = await client.post("/v1/checkout/quotes", json=body, headers=bearer(token))
    return response.status, await response.json()


def stored(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Quote))


async def test_a_quote_prices_the_lines_and_each_option_with_its_tax(checkout, db):
    client = await checkout()
    token = await customer_token(client)
    mug, plate = add_product(db, price="12.50"), add_product(db, price="8.00")

    code, body = await quote(client, token, [(mug, 2), (plate, 1)])

    assert code == 201, body
    assert (body["subtotal"], body["subtotal_amount"], body["currency"]) == ("33.00", 3300, "usd")
    assert [(line["quantity"], line["unit_amount"]) for line in body["lines"]] == [
        (2, 1250),
        (1, 800),
    ]
    options = body["shipping_options"]
    assert len(options) >= 3 and len({o["id"] for o in options}) == len(options)
    assert [o["shipping_amount"] for o in options] == sorted(o["shipping_amount"] for o in options)
    for option in options:
        # New York taxes the goods and the shipping (8.875 %), each line rounded
        goods = 222 + 71  # 25.00 and 8.00 at 8.875 %
        shipping_tax = int((Decimal(option["shipping_amount"]) * Decimal("0.08875")).quantize(
            Decimal(1), rounding="ROUND_HALF_UP"))  # fmt: skip
        assert option["tax_amount"] == goods + shipping_tax, option
        assert option["total_amount"] == 3300 + option["shipping_amount"] + option["tax_amount"]
        assert option["total"] == f"{Decimal(option['total_amount']) / 100:.2f}"
        assert option["estimated"] is False
    # it is kept for its customer, and nobody else's to read
    again = await client.get(f"/v1/checkout/quotes/{body['id']}", headers=bearer(token))
    assert again.status == 200 and (await again.json()) == body
    other = await customer_token(client)
    foreign = await client.get(f"/v1/checkout/quotes/{body['id']}", headers=bearer(other))
    assert foreign.status == 404
    with Session(db) as session:
        kept = session.get(Quote, uuid.UUID(body["id"]))
        assert all(o["tax_calculation"].startswith("taxcalc_") for o in kept.options)
        assert kept.items[0]["tax_code"] == "txcd_99999999"


async def test_california_does_not_tax_shipping_and_none_means_no_tax(checkout, db):
    client = await checkout()
    token = await customer_token(client)
    mug = add_product(db, price="12.50")
    code, body = await quote(client, token, [(mug, 2)], address=CALIFORNIA)
    assert code == 201, body
    assert {o["tax_amount"] for o in body["shipping_options"]} == {181}  # 25.00 at 7.25 %

    untaxed = await checkout(tax_provider="none")
    code, body = await quote(untaxed, await customer_token(untaxed), [(mug, 2)])
    assert code == 201 and {o["tax_amount"] for o in body["shipping_options"]} == {0}


async def test_the_merchants_services_handling_and_free_shipping(checkout, db):
    client = await checkout(shipping_services=("USPS:Priority", "UPS:Ground"),
                            shipping_handling_amount=Decimal("1.50"))  # fmt: skip
    token = await customer_token(client)
    mug = add_product(db, price="12.50")
    code, body = await quote(client, token, [(mug, 1)], address=CALIFORNIA)
    assert code == 201, body
    assert [(o["carrier"], o["service"]) for o in body["shipping_options"]] == [
        ("USPS", "Priority"), ("UPS", "Ground")]  # fmt: skip

    free = await checkout(shipping_free_over=Decimal("20.00"))
    token = await customer_token(free)
    _, below = await quote(free, token, [(mug, 1)], address=CALIFORNIA)
    _, above = await quote(free, token, [(mug, 2)], address=CALIFORNIA)
    assert min(o["shipping_amount"] for o in below["shipping_options"]) > 0
    assert {o["shipping_amount"] for o in above["shipping_options"]} == {0}


async def test_a_carrier_down_gives_the_flat_estimate_or_503(checkout, db, sandbox):
    mug = add_product(db, price="12.50")
    flat = await checkout(shipping_fallback_amount=Decimal("6.00"))
    token = await customer_token(flat)
    sandbox.set_faults(easypost={"error_rate": 1.0, "paths": ["POST /easypost/v2/shipments"]})
    code, body = await quote(flat, token, [(mug, 1)], address=CALIFORNIA)
    assert code == 201, body
    (option,) = body["shipping_options"]
    assert (option["id"], option["estimated"], option["shipping_amount"]) == (
        "flat_standard",
        True,
        600,
    )

    before = stored(db)
    bare = await checkout()
    sandbox.set_faults(easypost={"error_rate": 1.0, "paths": ["POST /easypost/v2/shipments"]})
    response = await bare.post("/v1/checkout/quotes", headers=bearer(await customer_token(bare)),
                               json={"items": [{"product_id": str(mug), "quantity": 1}],
                                     "shipping_address": CALIFORNIA})  # fmt: skip
    assert response.status == 503, await response.text()
    assert (await response.json())["error"]["code"] == "shipping_unavailable"
    assert response.headers["Retry-After"]
    assert stored(db) == before


async def test_stripe_tax_down_is_503_and_nothing_is_stored(checkout, db, sandbox):
    client = await checkout()
    token = await customer_token(client)
    mug = add_product(db, price="12.50")
    sandbox.set_faults(stripe={"error_rate": 1.0, "paths": ["POST /v1/tax/calculations"]})
    before = stored(db)
    code, body = await quote(client, token, [(mug, 1)])
    assert code == 503 and body["error"]["code"] == "tax_unavailable", body
    assert stored(db) == before


async def test_bad_input_is_a_4xx_and_stores_nothing(checkout, db):
    client = await checkout()
    token = await customer_token(client)
    mug = add_product(db, price="12.50")
    gone = add_product(db, price="1.00", active=False)
    before = stored(db)
    code, body = await quote(client, token, [(gone, 1)])
    assert code == 422 and body["error"]["code"] == "product_unavailable"
    code, body = await quote(client, token, [(mug, 1)], address={**NEW_YORK, "state": None})
    assert code == 422 and body["error"]["code"] == "tax_location_invalid", body
    for bad in ({"items": [], "shipping_address": NEW_YORK},
                {"items": [{"product_id": str(mug), "quantity": 1}] * 2, "shipping_address": NEW_YORK},
                {"items": [{"product_id": str(mug), "quantity": "1"}], "shipping_address": NEW_YORK},
                {"items": [{"product_id": str(mug), "quantity": 1}]}):  # fmt: skip
        response = await client.post("/v1/checkout/quotes", json=bad, headers=bearer(token))
        assert response.status == 422, (bad, await response.text())
    anonymous = await client.post("/v1/checkout/quotes", json={})
    assert anonymous.status == 401
    missing = await client.get(f"/v1/checkout/quotes/{mug}", headers=bearer(token))
    assert missing.status == 404
    assert stored(db) == before
