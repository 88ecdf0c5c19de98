"""The OpenAPI document says what the API does: the statuses each route answers, and
request schemas that refuse what the API refuses. No I/O (the live check is
tests/e2e/test_openapi_conformance.py)."""

from __future__ import annotations

import jsonschema_rs  # schemathesis's validator (a dev dependency through it)
import pytest

from api.routes import ROUTES
from api.shared.openapi import build_openapi

DOCUMENT = build_openapi(ROUTES, version="test")


def statuses(method: str, path: str) -> set[int]:
    return {int(s) for s in DOCUMENT["paths"][path][method]["responses"]}


def valid(name: str, instance: dict) -> bool:
    resolver_doc = {"components": DOCUMENT["components"], "$ref": f"#/components/schemas/{name}"}
    return jsonschema_rs.Draft202012Validator(resolver_doc).is_valid(instance)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("post", "/v1/auth/login", {200, 400, 401, 413, 415, 422, 429, 503}),
        ("post", "/v1/auth/refresh", {200, 400, 401, 413, 415, 422, 429, 503}),
        ("post", "/v1/users", {201, 400, 409, 413, 415, 422, 429, 503}),
        ("post", "/v1/orders/{order_id}/cancel", {200, 400, 401, 404, 409, 413, 415, 422, 503}),
        ("post", "/v1/products", {201, 400, 401, 403, 409, 413, 415, 422, 503}),
        ("put", "/v1/products/{product_id}/stock",
         {200, 400, 401, 403, 404, 409, 413, 415, 422, 503}),
        ("post", "/v1/orders", {201, 400, 401, 404, 409, 410, 413, 415, 422, 429, 503}),
        ("post", "/v1/webhooks/stripe", {200, 400, 413, 503}),
        ("post", "/v1/webhooks/easypost", {200, 400, 413, 503}),
        ("get", "/readyz", {200, 503}),
        ("get", "/healthz", {200}),
    ],
)  # fmt: skip
def test_every_status_a_route_answers_is_documented(method, path, expected):
    assert statuses(method, path) == expected


def test_outages_and_throttling_document_retry_after():
    responses = DOCUMENT["paths"]["/v1/orders"]["post"]["responses"]
    assert "Retry-After" in responses["503"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]
    readiness = DOCUMENT["paths"]["/readyz"]["get"]["responses"]["503"]
    assert readiness["content"]["application/json"]["schema"]["$ref"].endswith("/Readiness")


def test_the_dead_letter_list_is_documented_as_the_object_it_is():
    ok = DOCUMENT["paths"]["/v1/admin/dead-letters"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/DeadLetterPage")
    letter = {"id": "m1", "queue": "payments", "actor": "request_payment", "kwargs": {},
              "died_at": "2026-01-01T00:00:00+00:00", "retries": 3, "error": "boom"}  # fmt: skip
    assert valid("DeadLetterPage", {"items": [letter], "total": 1})
    assert not valid("DeadLetterPage", "a string")


@pytest.mark.parametrize("price", ["", " 1.50", "1.234", "1e3", "-1", 12.5, True, None])
def test_a_price_the_api_refuses_the_schema_refuses(price):
    body = {"sku": "A-1", "name": "n", "price": price, "category": "c"}
    assert not valid("ProductCreate", body)


@pytest.mark.parametrize("price", ["0", "12.50", "12.5", "9999999999.99"])
def test_a_price_the_api_takes_the_schema_takes(price):
    assert valid("ProductCreate", {"sku": "A-1", "name": "n", "price": price, "category": "c"})


@pytest.mark.parametrize("quantity", [True, "1", 1.5, 0, 101])
def test_a_quantity_the_api_refuses_the_schema_refuses(quantity):
    line = {"product_id": "7f1c6c8e-2b0f-4d55-9b55-1f0c1a4f8e11", "quantity": quantity}
    assert not valid("OrderItemIn", line)


def test_stock_must_be_an_integer_in_the_schema():
    assert not valid("StockSet", {"on_hand": False})
    assert valid("StockSet", {"on_hand": 0})
