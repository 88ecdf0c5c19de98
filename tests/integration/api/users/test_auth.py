"""Registration, login, rotating refresh tokens, logout and the caller's profile."""

from __future__ import annotations

from tests.support.storefront import PASSWORD, bearer, login, register


async def test_register_then_login_gives_a_working_access_token(client, db):
    user = await register(client, "Ada@Example.com")
    assert user["email"] == "ada@example.com" and user["role"] == "customer"
    assert "password" not in str(user) and "password_hash" not in user

    tokens = await login(client, "ADA@example.com")
    me = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))

    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    assert (await me.json())["id"] == user["id"]


async def test_a_wrong_password_and_an_unknown_email_look_the_same(client, db):
    await register(client, "grace@example.com")
    wrong = await client.post(
        "/v1/auth/login", json={"email": "grace@example.com", "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status == unknown.status == 401
    assert (await wrong.json()) == (await unknown.json())


async def test_refresh_rotates_and_a_reused_token_revokes_the_session(client, db):
    user = await register(client)
    first = await login(client, user["email"])

    # When the refresh token is used once, a new pair comes back
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status == 200
    second = await rotated.json()
    assert second["refresh_token"] != first["refresh_token"]

    # When the old one is presented again (stolen?), it is refused
    reused = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status == 401
    assert (await reused.json())["error"]["code"] == "refresh_token_reused"

    # and the whole session is gone: even the newest token no longer works
    after = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status == 401


async def test_other_sessions_survive_a_reuse_in_one(client, db):
    user = await register(client)
    laptop, phone = await login(client, user["email"]), await login(client, user["email"])
    await client.post("/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    await client.post("/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})

    response = await client.post("/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})

    assert response.status == 200


async def test_logout_revokes_the_refresh_token(client, db):
    user = await register(client)
    tokens = await login(client, user["email"])

    response = await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    again = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert response.status == 204 and again.status == 401


async def test_an_unknown_refresh_token_is_401(client, db):
    response = await client.post("/v1/auth/refresh", json={"refresh_token": "rt_made_up"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_refresh_token"


async def test_a_disabled_account_cannot_log_in_or_refresh(client, db):
    user = await register(client)
    tokens = await login(client, user["email"])
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE users SET is_active = false")

    denied = await client.post(
        "/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    me = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))

    assert denied.status == refresh.status == me.status == 401


async def test_patch_me_changes_names_and_needs_the_current_password_for_a_new_one(client, db):
    user = await register(client)
    tokens = await login(client, user["email"])
    auth = bearer(tokens["access_token"])

    renamed = await client.patch("/v1/users/me", json={"first_name": "Augusta"}, headers=auth)
    no_current = await client.patch(
        "/v1/users/me", json={"password": "a brand new password"}, headers=auth
    )
    changed = await client.patch(
        "/v1/users/me",
        json={"password": "a brand new password", "current_password": PASSWORD},
        headers=auth,
    )

    assert (await renamed.json())["first_name"] == "Augusta"
    assert no_current.status == 422
    assert changed.status == 200
    await login(client, user["email"], "a brand new password")
    # a new password ends the sessions that existed before it
    old = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert old.status == 401


async def test_a_customer_cannot_make_themselves_admin(client, db):
    user = await register(client)
    tokens = await login(client, user["email"])
    response = await client.patch(
        "/v1/users/me", json={"role": "admin"}, headers=bearer(tokens["access_token"])
    )
    assert response.status == 422
