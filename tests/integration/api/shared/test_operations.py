"""Health, readiness, metrics and the API description, on the real app."""

from __future__ import annotations

import re

from aiohttp import web

from api.app import create_app
from api.shared.metrics_server import create_metrics_app
from fulfillment.embedded import free_port
from tests.support.storefront import add_product, bearer, customer_token, order_body


async def test_healthz_and_readyz(client, db):
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json()) == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_says_which_dependency_is_down(aiohttp_client, settings, db):
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = await aiohttp_client(create_app(down))

    response = await client.get("/readyz")

    body = await response.json()
    assert response.status == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] != "ok"


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics_text.splitlines():
        match = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))).strip(",") == wanted:
            return float(match.group(2))
    return 0.0


async def test_request_metrics_are_labelled_by_route_template(client, aiohttp_client, db):
    token = await customer_token(client)
    pid = add_product(db)
    scraper = await aiohttp_client(create_metrics_app())
    before = await (await scraper.get("/metrics")).text()
    created_before = sample(before, "fulfillment_orders_created_total")

    await client.get(f"/v1/products/{pid}")
    order = await (
        await client.post("/v1/orders", json=order_body((pid, 1)), headers=bearer(token))
    ).json()
    await client.get(f"/v1/orders/{order['id']}", headers=bearer(token))
    text = await (await scraper.get("/metrics")).text()

    labels = {"method": "GET", "route": "/v1/products/{product_id}", "status": "200"}
    assert sample(text, "fulfillment_http_requests_total", **labels) >= 1
    assert str(pid) not in text and order["id"] not in text
    assert 'route="/v1/orders/{order_id}"' in text
    assert "fulfillment_http_request_duration_seconds_bucket" in text
    assert sample(text, "fulfillment_orders_created_total") == created_before + 1


async def test_a_method_no_route_takes_is_counted_as_other(client, aiohttp_client, db):
    scraper = await aiohttp_client(create_metrics_app())
    before = await (await scraper.get("/metrics")).text()

    brewed = [await client.request(m, "/v1/products") for m in ("PROPFIND", "MKCOL", "LOCK")]

    text = await (await scraper.get("/metrics")).text()
    assert {r.status for r in brewed} == {405}
    labels = {"method": "other", "route": "unmatched", "status": "405"}
    assert sample(text, "fulfillment_http_requests_total", **labels) == (
        sample(before, "fulfillment_http_requests_total", **labels) + 3
    )
    assert "PROPFIND" not in text and "MKCOL" not in text


async def test_request_ids_are_echoed_or_made(client, db):
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    made = await client.get("/healthz")
    hostile = await client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 200})
    assert given.headers["X-Request-ID"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])


async def test_openapi_describes_exactly_the_routes_that_exist(client, db):
    app: web.Application = client.server.app
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
    }

    spec = await (await client.get("/v1/openapi.json")).json()
    described = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}

    assert described == served
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for response in operation["responses"].values():
                ref = response.get("content", {}).get("application/json", {}).get("schema", {})
                if "$ref" in ref:
                    name = ref["$ref"].rsplit("/", 1)[-1]
                    assert name in spec["components"]["schemas"], (path, name)


async def test_docs_page_renders_the_description(client, db):
    response = await client.get("/docs")
    assert response.status == 200 and "/v1/openapi.json" in await response.text()
