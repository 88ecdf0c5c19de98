"""Browsing the catalogue, and what admins may change in it."""

from __future__ import annotations

from tests.support.storefront import add_product, admin_token, bearer


async def test_browse_with_paging_category_and_search(client, db):
    for name, category in [("Enamel mug", "kitchen"), ("Kettle", "kitchen"), ("Tote", "bags")]:
        add_product(db, name=name, category=category)
    add_product(db, name="Retired mug", category="kitchen", active=False)

    everything = await (await client.get("/v1/products?limit=2")).json()
    kitchen = await (await client.get("/v1/products?category=Kitchen")).json()
    mugs = await (await client.get("/v1/products?search=MUG")).json()
    wildcard = await (await client.get("/v1/products?search=%25")).json()

    assert everything["total"] == 3 and len(everything["items"]) == 2
    assert [p["name"] for p in kitchen["items"]] == ["Enamel mug", "Kettle"]
    assert [p["name"] for p in mugs["items"]] == ["Enamel mug"]
    assert wildcard["total"] == 0  # a literal %, not a wildcard


async def test_a_product_shows_price_as_a_decimal_string_and_what_is_available(client, db):
    pid = add_product(db, price="7.5", on_hand=12)
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE inventory SET reserved = 5")

    product = await (await client.get(f"/v1/products/{pid}")).json()

    assert product["price"] == "7.50" and product["available"] == 7


async def test_an_inactive_product_is_not_found(client, db):
    pid = add_product(db, active=False)
    assert (await client.get(f"/v1/products/{pid}")).status == 404


async def test_admin_creates_updates_and_counts_stock(client, db):
    token = await admin_token(client, db)
    body = {"sku": "LAMP-1", "name": "Lamp", "price": "39.99", "category": "Home", "on_hand": 3}

    created = await client.post("/v1/products", json=body, headers=bearer(token))
    product = await created.json()
    pid = product["id"]
    patched = await client.patch(
        f"/v1/products/{pid}", json={"price": "35.00"}, headers=bearer(token)
    )
    stocked = await client.put(
        f"/v1/products/{pid}/stock", json={"on_hand": 10}, headers=bearer(token)
    )
    duplicate = await client.post("/v1/products", json=body, headers=bearer(token))

    assert created.status == 201 and product["category"] == "home" and product["available"] == 3
    assert (await patched.json())["price"] == "35.00"
    assert (await stocked.json())["available"] == 10
    assert duplicate.status == 409 and (await duplicate.json())["error"]["code"] == "sku_taken"


async def test_stock_cannot_drop_below_what_is_reserved(client, db):
    token = await admin_token(client, db)
    pid = add_product(db, on_hand=10)
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE inventory SET reserved = 4")

    response = await client.put(
        f"/v1/products/{pid}/stock", json={"on_hand": 3}, headers=bearer(token)
    )

    assert response.status == 409
    assert (await response.json())["error"]["details"]["reserved"] == 4


async def test_the_database_itself_refuses_to_oversell(db):
    import pytest
    from sqlalchemy.exc import IntegrityError

    pid = add_product(db, on_hand=2)
    with pytest.raises(IntegrityError), db.begin() as conn:
        conn.exec_driver_sql(f"UPDATE inventory SET reserved = 3 WHERE product_id = '{pid}'")


async def test_admin_edits_of_unknown_products_are_404(client, db):
    import uuid

    token = await admin_token(client, db)
    missing = uuid.uuid4()
    patch = await client.patch(f"/v1/products/{missing}", json={"name": "x"}, headers=bearer(token))
    stock = await client.put(
        f"/v1/products/{missing}/stock", json={"on_hand": 1}, headers=bearer(token)
    )
    assert patch.status == stock.status == 404
