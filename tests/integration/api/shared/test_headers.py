"""What every answer says about itself: no sniffing, no caching of anything personal or
failed, no server version; CORS only for the configured storefront origins; metrics
only on their own port."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from api.app import create_app
from api.shared.context import SETTINGS
from api.shared.metrics_server import metrics_site
from fulfillment.embedded import free_port
from tests.support.storefront import add_product, bearer, customer_token

SHOP = "https://shop.example.com"


async def test_every_answer_says_nosniff_and_no_server_version(client, db):
    token = await customer_token(client)
    answers = [
        await client.get("/healthz"),
        await client.get("/v1/products"),
        await client.get("/v1/orders", headers=bearer(token)),
        await client.get("/v1/orders"),  # 401
        await client.get("/nowhere"),  # 404 from the router
        await client.delete("/v1/products"),  # 405
        await client.post("/v1/users", data=b"{", headers={"Content-Type": "application/json"}),
    ]
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url
        assert response.headers["Server"] == "fulfillment", response.url


async def test_signed_in_and_error_answers_are_never_stored_public_reads_may_be(client, db):
    token = await customer_token(client)
    pid = add_product(db)

    public = await client.get(f"/v1/products/{pid}")
    mine = await client.get("/v1/orders", headers=bearer(token))
    refused = await client.get("/v1/orders")
    missing = await client.get("/v1/products/00000000-0000-0000-0000-000000000000")
    login = await client.post("/v1/auth/login", json={"email": "x@example.com", "password": "p"})

    assert public.status == 200 and "Cache-Control" not in public.headers
    for response in (mine, refused, missing, login):
        assert response.headers["Cache-Control"] == "no-store", response.url


async def test_cors_is_off_unless_origins_are_configured(client, db):
    preflight = await client.options(
        "/v1/orders", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    )
    read = await client.get("/v1/products", headers={"Origin": SHOP})

    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in read.headers


@pytest.fixture
async def shop_client(aiohttp_client, settings, db):
    return await aiohttp_client(create_app(settings.model_copy(update={"cors_origins": (SHOP,)})))


async def test_a_configured_storefront_passes_the_preflight_and_reads_the_answer(shop_client):
    preflight = await shop_client.options("/v1/orders", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
    })  # fmt: skip
    read = await shop_client.get("/v1/products", headers={"Origin": SHOP})

    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == SHOP
    allowed = preflight.headers["Access-Control-Allow-Headers"].upper()
    assert {"AUTHORIZATION", "CONTENT-TYPE", "IDEMPOTENCY-KEY"} <= set(allowed.split(","))
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    assert read.status == 200 and read.headers["Access-Control-Allow-Origin"] == SHOP
    assert "X-REQUEST-ID" in read.headers["Access-Control-Expose-Headers"].upper()


async def test_another_origin_gets_no_cors_answer(shop_client):
    preflight = await shop_client.options("/v1/orders", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST",
    })  # fmt: skip
    read = await shop_client.get("/v1/products", headers={"Origin": "https://evil.example.com"})

    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in read.headers


async def test_metrics_are_served_on_their_own_port_not_the_public_one(client, settings, db):
    await client.get("/healthz")
    app = web.Application()
    app[SETTINGS] = settings.model_copy(update={"api_metrics_port": free_port()})
    app.cleanup_ctx.append(metrics_site)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup context: the metrics listener starts
    try:
        url = f"http://127.0.0.1:{app[SETTINGS].api_metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as scrape:
            body = await scrape.text()
            assert scrape.status == 200
            assert scrape.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        await runner.cleanup()
    public = await client.get("/metrics")

    assert "fulfillment_http_requests_total" in body
    assert public.status == 404
