"""Who may call what: every route of the table with no token, a customer's and an
admin's; and the database, not the token, decides whether an account may still act."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text

from api.routes import ROUTES, Route
from tests.support.storefront import (
    add_product,
    admin_token,
    bearer,
    customer_token,
    login,
    order_body,
    register,
)

#: What each kind of caller gets from a route of each access level (None: neither
#: 401 nor 403, whatever the handler then makes of the request).
EXPECTED = {
    "public": {"anonymous": None, "customer": None, "admin": None},
    "user": {"anonymous": 401, "customer": None, "admin": None},
    "admin": {"anonymous": 401, "customer": 403, "admin": None},
}


def concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", str(uuid.uuid4()), path)


async def call(client, route: Route, token: str | None):
    headers = bearer(token) if token else {}
    kwargs = {"json": {}} if route.method in ("POST", "PUT", "PATCH") else {}
    return await client.request(route.method, concrete(route.path), headers=headers, **kwargs)


async def test_every_route_of_the_table_enforces_its_declared_access(client, db):
    tokens = {
        "anonymous": None,
        "customer": await customer_token(client),
        "admin": await admin_token(client, db),
    }
    seen = []
    for route in ROUTES:
        for caller, token in tokens.items():
            response = await call(client, route, token)
            expected = EXPECTED[route.auth][caller]
            seen.append((route.method, route.path, caller, response.status))
            if expected is None:
                assert response.status not in (401, 403), seen[-1]
            else:
                assert response.status == expected, seen[-1]
                body = await response.json()
                assert body["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[expected]
    assert len(seen) == 3 * len(ROUTES)


def test_the_app_serves_exactly_the_routes_of_the_table(app_routes):
    assert app_routes == {(route.method, route.path) for route in ROUTES}


@pytest.fixture
def app_routes(settings):
    from api.app import create_app

    app = create_app(settings)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
    }


def set_account(db, user_id: str, **values) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with db.begin() as conn:
        conn.execute(
            text(f"UPDATE users SET {assignments} WHERE id = :id"), {"id": user_id, **values}
        )


async def test_a_deleted_accounts_token_stops_working_at_once(client, db):
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]
    pid = add_product(db)
    assert (await client.get("/v1/orders", headers=bearer(token))).status == 200

    with db.begin() as conn:
        conn.execute(text("DELETE FROM refresh_sessions WHERE user_id = :id"), {"id": user["id"]})
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user["id"]})
    response = await client.post(
        "/v1/orders", json=order_body((pid, 1)), headers=bearer(token) | {"Idempotency-Key": "k1"}
    )

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "account_disabled"


async def test_a_disabled_accounts_token_stops_working_at_once(client, db):
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]

    set_account(db, user["id"], is_active=False)
    response = await client.get("/v1/users/me", headers=bearer(token))

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "account_disabled"
    set_account(db, user["id"], is_active=True)
    assert (await client.get("/v1/users/me", headers=bearer(token))).status == 200


async def test_a_role_change_takes_effect_on_the_next_request(client, db):
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]  # says "customer"
    assert (await client.get("/v1/admin/dead-letters", headers=bearer(token))).status == 403

    set_account(db, user["id"], role="admin")
    promoted = await client.get("/v1/admin/dead-letters", headers=bearer(token))
    set_account(db, user["id"], role="customer")
    demoted = await client.get("/v1/admin/dead-letters", headers=bearer(token))

    assert promoted.status == 200 and demoted.status == 403


async def test_an_admin_demoted_loses_admin_access_with_the_token_it_already_has(client, db):
    token = await admin_token(client, db)
    me = await (await client.get("/v1/users/me", headers=bearer(token))).json()
    assert (await client.get("/v1/admin/dead-letters", headers=bearer(token))).status == 200

    set_account(db, me["id"], role="customer")
    response = await client.post("/v1/products", json={"sku": "X"}, headers=bearer(token))

    assert response.status == 403
