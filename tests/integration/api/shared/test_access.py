"""Who may call what: every route of the table with no token, a customer's and an
admin's; and the database, not the token, decides whether an account may still act."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from sqlalchemy import text

from api.app import create_app
from api.routes import ROUTES, Route
from api.shared.context import ACCOUNT_STATES
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
    app = create_app(settings)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
    }


async def set_account(client, db, user_id: str, **values) -> None:
    """Change the account in the database, then wait until the API process has heard
    the change announced (a notification, milliseconds after the commit): from the
    next request on, the API must act on it."""
    await write_announced(client, db, text(f"UPDATE users SET {_assignments(values)} WHERE id = :id"),
                          {"id": user_id, **values})  # fmt: skip


def _assignments(values: dict) -> str:
    return ", ".join(f"{name} = :{name}" for name in values)


async def write_announced(client, db, *statements_and_params) -> None:
    states = client.app[ACCOUNT_STATES]
    await until(lambda: states.listening)
    before = states.generation
    with db.begin() as conn:
        for statement, params in zip(statements_and_params[::2], statements_and_params[1::2],
                                     strict=True):  # fmt: skip
            conn.execute(statement, params)
    await until(lambda: (states.take_in(), states.generation)[1] != before)


async def until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the API never heard it"
        await asyncio.sleep(0.005)


async def test_the_api_keeps_an_account_it_read_until_the_database_announces_a_change(client, db):
    # Given the API has read a signed-in customer's account once
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]
    states = client.app[ACCOUNT_STATES]
    await until(lambda: states.listening)
    assert (await client.get("/v1/users/me", headers=bearer(token))).status == 200
    # Then it keeps it: the next requests need no database round trip for it
    assert states.get(uuid.UUID(user["id"])) == (True, "customer", 0)

    # When the account is disabled, the change is announced and the entry forgotten
    await set_account(client, db, user["id"], is_active=False)
    assert states.get(uuid.UUID(user["id"])) is None
    assert (await client.get("/v1/users/me", headers=bearer(token))).status == 401
    # And a change that is neither of those (a name) announces nothing
    before = states.generation
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET first_name = 'X' WHERE id = :id"), {"id": user["id"]})
    await asyncio.sleep(0.1)  # an absence cannot be polled for
    states.take_in()
    assert states.generation == before


async def test_a_deleted_accounts_token_stops_working_at_once(client, db):
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]
    pid = add_product(db)
    assert (await client.get("/v1/orders", headers=bearer(token))).status == 200

    await write_announced(
        client, db,
        text("DELETE FROM refresh_sessions WHERE user_id = :id"), {"id": user["id"]},
        text("DELETE FROM users WHERE id = :id"), {"id": user["id"]},
    )  # fmt: skip
    response = await client.post(
        "/v1/orders", json=order_body((pid, 1)), headers=bearer(token) | {"Idempotency-Key": "k1"}
    )

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "account_disabled"


async def test_a_disabled_accounts_token_stops_working_at_once(client, db):
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]

    await set_account(client, db, user["id"], is_active=False)
    response = await client.get("/v1/users/me", headers=bearer(token))

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "account_disabled"
    await set_account(client, db, user["id"], is_active=True)
    assert (await client.get("/v1/users/me", headers=bearer(token))).status == 200


async def test_a_role_change_takes_effect_on_the_next_request(client, db):
    user = await register(client)
    token = (await login(client, user["email"]))["access_token"]  # says "customer"
    assert (await client.get("/v1/admin/dead-letters", headers=bearer(token))).status == 403

    await set_account(client, db, user["id"], role="admin")
    promoted = await client.get("/v1/admin/dead-letters", headers=bearer(token))
    await set_account(client, db, user["id"], role="customer")
    demoted = await client.get("/v1/admin/dead-letters", headers=bearer(token))

    assert promoted.status == 200 and demoted.status == 403


async def test_an_admin_demoted_loses_admin_access_with_the_token_it_already_has(client, db):
    token = await admin_token(client, db)
    me = await (await client.get("/v1/users/me", headers=bearer(token))).json()
    assert (await client.get("/v1/admin/dead-letters", headers=bearer(token))).status == 200

    await set_account(client, db, me["id"], role="customer")
    response = await client.post("/v1/products", json={"sku": "X"}, headers=bearer(token))

    assert response.status == 403
