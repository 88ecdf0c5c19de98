"""Merchant webhook endpoints on the real API: an admin registers one and sees its secret
only at creation, customers may not touch them, and a URL that is not plain https, or
that points inside in production, is refused."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_app
from fulfillment.models import WebhookEndpoint
from tests.support.merchant_webhooks import ENDPOINTS, register, signed_in

#: URLs refused in any mode, with the refusal's code.
NOT_PLAIN_HTTPS = {
    "http://merchant.example.com/hooks": "https_required",
    "ftp://merchant.example.com/hooks": "invalid_url",
    "https://user:pw@merchant.example.com/hooks": "invalid_url",
    "https://[::1/hooks": "invalid_url",
    "https://merchant.example.com:99999/hooks": "invalid_url",
}


#: URLs whose host is, or resolves to, an address inside: refused in production.
INSIDE = (
    "https://127.0.0.1/hooks", "https://localhost/hooks", "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hooks", "https://[::ffff:10.0.0.1]/hooks", "https://224.0.0.1/hooks",
    "https://0.0.0.0/hooks", "https://[fe80::1]/hooks", "https://240.0.0.1/hooks",
)  # fmt: skip


async def test_an_admin_registers_an_endpoint_and_sees_its_secret_only_at_creation(client, admin):
    created = await register(client, admin, "https://merchant.example.com/hooks", ["order.paid"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["order.paid"] and created["disabled"] is False

    one = await (await client.get(f"{ENDPOINTS}/{created['id']}", headers=admin)).json()
    listing = await (await client.get(ENDPOINTS, headers=admin)).json()
    assert "secret" not in one and one["url"] == "https://merchant.example.com/hooks"
    assert [e["id"] for e in listing["items"]] == [created["id"]] and listing["total"] == 1
    assert all("secret" not in e for e in listing["items"])

    changed = await client.patch(f"{ENDPOINTS}/{created['id']}", headers=admin,
                                 json={"events": ["order.shipped", "order.paid"], "disabled": True})  # fmt: skip
    assert changed.status == 200
    body = await changed.json()
    assert body["events"] == ["order.paid", "order.shipped"] and body["disabled"] is True

    assert (await client.delete(f"{ENDPOINTS}/{created['id']}", headers=admin)).status == 204
    assert (await client.get(f"{ENDPOINTS}/{created['id']}", headers=admin)).status == 404


async def test_customers_may_not_touch_webhook_endpoints(client, db, settings):
    response = await client.get(ENDPOINTS, headers=signed_in(db, settings, "customer"))
    assert response.status == 403


async def test_a_url_that_is_not_plain_https_is_refused(client, admin, db):
    for url, code in NOT_PLAIN_HTTPS.items():
        response = await client.post(ENDPOINTS, json={"url": url, "events": ["*"]}, headers=admin)
        assert response.status == 422, url
        assert (await response.json())["error"]["code"] == code, url
    # in development, plain http to loopback is allowed (a local receiver)
    await register(client, admin, "http://127.0.0.1:8000/hooks")


async def test_in_production_a_url_pointing_inside_is_refused(aiohttp_client, settings, db):
    # Given the API in production mode
    production = settings.model_copy(update={"fulfillment_env": "production"})
    client = await aiohttp_client(create_app(production))
    admin = signed_in(db, settings, "admin")
    # (a public address, literal: the test machine may have no DNS)
    created = await register(client, admin, "https://93.184.216.34/hooks")

    for url in (*INSIDE, "http://127.0.0.1:8000/hooks"):
        # When an admin registers (or changes to) a URL pointing inside
        response = await client.post(ENDPOINTS, json={"url": url, "events": ["*"]}, headers=admin)
        patched = await client.patch(f"{ENDPOINTS}/{created['id']}", json={"url": url},
                                     headers=admin)  # fmt: skip

        # Then it is refused, and nothing is stored
        assert response.status == patched.status == 422, url
        expected = "https_required" if url.startswith("http:") else "address_not_allowed"
        assert (await response.json())["error"]["code"] == expected, url
    with Session(db) as session:
        assert session.scalars(select(WebhookEndpoint.url)).all() == [created["url"]]
