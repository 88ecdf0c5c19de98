"""Bad input gets a clear 4xx with a code and a message, and changes nothing."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfillment.models import Base
from tests.support.storefront import (
    PASSWORD,
    add_product,
    admin_token,
    bearer,
    customer_token,
    order_body,
    register,
)


def snapshot(engine) -> dict[str, int]:
    """Row counts of every table: what 'nothing written' is checked against."""
    with Session(engine) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


async def expect_error(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


@pytest.fixture
async def shopper(client, db):
    token = await customer_token(client)
    product = add_product(db)
    return token, product


async def test_malformed_json_is_400(client, db, shopper):
    token, _ = shopper
    before = snapshot(db)
    response = await client.post(
        "/v1/orders",
        data=b'{"items": [',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    await expect_error(response, 400, "malformed_json")
    assert snapshot(db) == before


async def test_schema_violations_are_422_naming_the_fields(client, db, shopper):
    token, product = shopper
    before = snapshot(db)
    body = order_body((product, 1))
    del body["shipping_address"]["city"]
    body["payment_method"] = "card_123"

    error = await expect_error(
        await client.post("/v1/orders", json=body, headers=bearer(token)), 422, "validation_error"
    )

    fields = {f["field"] for f in error["details"]["fields"]}
    assert fields == {"shipping_address.city", "payment_method"}
    assert snapshot(db) == before


@pytest.mark.parametrize("active", [False, None], ids=["inactive", "unknown"])
async def test_unknown_or_inactive_products_are_422(client, db, shopper, active):
    token, _ = shopper
    product = add_product(db, active=False) if active is False else uuid.uuid4()
    before = snapshot(db)

    error = await expect_error(
        await client.post("/v1/orders", json=order_body((product, 1)), headers=bearer(token)),
        422,
        "product_unavailable",
    )

    assert error["details"]["product_ids"] == [str(product)]
    assert snapshot(db) == before


@pytest.mark.parametrize("quantity", [0, 101, -1])
async def test_quantity_outside_1_to_100_is_422(client, db, shopper, quantity):
    token, product = shopper
    before = snapshot(db)
    response = await client.post(
        "/v1/orders", json=order_body((product, quantity)), headers=bearer(token)
    )
    error = await expect_error(response, 422, "validation_error")
    assert error["details"]["fields"][0]["field"] == "items.0.quantity"
    assert snapshot(db) == before


async def test_more_than_50_lines_is_422(client, db, shopper):
    token, _ = shopper
    products = [add_product(db) for _ in range(51)]
    before = snapshot(db)
    body = order_body(*[(p, 1) for p in products])
    error = await expect_error(
        await client.post("/v1/orders", json=body, headers=bearer(token)), 422, "validation_error"
    )
    assert error["details"]["fields"][0]["field"] == "items"
    assert snapshot(db) == before


async def test_the_same_product_twice_is_422(client, db, shopper):
    token, product = shopper
    before = snapshot(db)
    body = order_body((product, 1), (product, 2))
    await expect_error(
        await client.post("/v1/orders", json=body, headers=bearer(token)), 422, "validation_error"
    )
    assert snapshot(db) == before


async def test_mixed_currencies_are_422(client, db, shopper):
    token, product = shopper
    euro = add_product(db, currency="eur")
    before = snapshot(db)
    body = order_body((product, 1), (euro, 1))
    await expect_error(
        await client.post("/v1/orders", json=body, headers=bearer(token)), 422, "currency_mismatch"
    )
    assert snapshot(db) == before


async def test_a_body_over_1_mib_is_413(client, db, shopper):
    token, product = shopper
    before = snapshot(db)
    body = order_body((product, 1))
    body["shipping_address"]["line2"] = "x" * (1024 * 1024)
    await expect_error(
        await client.post("/v1/orders", json=body, headers=bearer(token)), 413, "payload_too_large"
    )
    assert snapshot(db) == before


async def test_a_body_that_is_not_json_is_415(client, db, shopper):
    token, _ = shopper
    before = snapshot(db)
    response = await client.post(
        "/v1/orders", data="items=1", headers={**bearer(token), "Content-Type": "text/plain"}
    )
    await expect_error(response, 415, "unsupported_media_type")
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}],
    ids=["missing", "garbage", "wrong-scheme"],
)
async def test_missing_or_bad_tokens_are_401(client, db, shopper, headers):
    _, product = shopper
    before = snapshot(db)
    response = await client.post("/v1/orders", json=order_body((product, 1)), headers=headers)
    assert response.status == 401
    assert snapshot(db) == before


async def test_a_token_signed_with_another_secret_is_401(client, db):
    import jwt

    forged = jwt.encode({"sub": str(uuid.uuid4()), "role": "admin"}, "guess", algorithm="HS256")
    response = await client.post("/v1/products", json={}, headers=bearer(forged))
    await expect_error(response, 401, "invalid_token")


async def test_a_customer_on_an_admin_route_is_403(client, db, shopper):
    token, product = shopper
    before = snapshot(db)
    for method, path, body in [
        ("POST", "/v1/products", {"sku": "X1", "name": "x", "price": "1.00", "category": "c"}),
        ("PATCH", f"/v1/products/{product}", {"name": "cheap"}),
        ("PUT", f"/v1/products/{product}/stock", {"on_hand": 0}),
    ]:
        response = await client.request(method, path, json=body, headers=bearer(token))
        await expect_error(response, 403, "forbidden")
    assert snapshot(db) == before


async def test_a_duplicate_email_is_409_whatever_its_case(client, db):
    user = await register(client, "Grace@Example.com")
    before = snapshot(db)
    body = {"email": "grace@EXAMPLE.com", "password": PASSWORD, "first_name": "G", "last_name": "H"}
    await expect_error(await client.post("/v1/users", json=body), 409, "email_taken")
    assert snapshot(db) == before and user["email"] == "grace@example.com"


async def test_registration_validates_email_and_password(client, db):
    before = snapshot(db)
    body = {"email": "not-an-email", "password": "short", "first_name": "", "last_name": "H"}
    error = await expect_error(await client.post("/v1/users", json=body), 422, "validation_error")
    assert {f["field"] for f in error["details"]["fields"]} == {"email", "password", "first_name"}
    assert snapshot(db) == before


async def test_a_json_array_body_is_422(client, db):
    await expect_error(await client.post("/v1/users", json=[1, 2]), 422, "validation_error")


async def test_bad_query_parameters_are_422(client, db):
    error = await expect_error(await client.get("/v1/products?limit=1000"), 422, "validation_error")
    assert error["details"]["fields"][0]["field"] == "limit"
    await expect_error(await client.get("/v1/products?page=zero"), 422, "validation_error")


async def test_unknown_routes_and_methods_answer_in_the_error_shape(client, db):
    await expect_error(await client.get("/v1/nope"), 404, "not_found")
    response = await client.delete("/v1/products")
    await expect_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


async def test_an_invalid_idempotency_key_is_400(client, db, shopper):
    token, product = shopper
    before = snapshot(db)
    response = await client.post(
        "/v1/orders",
        json=order_body((product, 1)),
        headers={**bearer(token), "Idempotency-Key": "has spaces in it"},
    )
    await expect_error(response, 400, "invalid_idempotency_key")
    assert snapshot(db) == before


async def test_admin_input_errors_change_nothing(client, db):
    token = await admin_token(client, db)
    product = add_product(db)
    before = snapshot(db)
    bad_price = {"sku": "OK-1", "name": "n", "price": "1.234", "category": "c"}
    await expect_error(
        await client.post("/v1/products", json=bad_price, headers=bearer(token)),
        422,
        "validation_error",
    )
    await expect_error(
        await client.put(
            f"/v1/products/{product}/stock", json={"on_hand": -1}, headers=bearer(token)
        ),
        422,
        "validation_error",
    )
    await expect_error(
        await client.patch(f"/v1/products/{product}", json={"price": None}, headers=bearer(token)),
        422,
        "validation_error",
    )
    assert snapshot(db) == before
