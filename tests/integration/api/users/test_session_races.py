"""Every writer of an account's sessions against every other, each held at a named point
(``tests.support.interleave``) while the other runs: a refresh, a login, a logout or a
reuse of a spent refresh token against a password reset or a password change, both ways
round. Whatever the order, nothing a reset or a password change ended keeps working,
and no session is left live beside a newer token version (``fulfillment verify``)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from pipelines.operations.invariants import Report
from pipelines.operations.session_invariants import check_sessions
from tests.support.interleave import hold, waiting_on_lock
from tests.support.storefront import PASSWORD, bearer, login, register

NEW_PASSWORD = "a brand new passphrase"


def reset_token(db: Engine, user_id: str) -> str:
    """A reset token of the account, as the mail would carry it (the request route and
    its mail have their own tests)."""
    token = "prt_" + secrets.token_urlsafe(32)
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO password_resets (user_id, token_hash, expires_at)"
                 " VALUES (:user, :hash, now() + interval '1 hour')"),
            {"user": uuid.UUID(user_id), "hash": hashlib.sha256(token.encode()).hexdigest()},
        )  # fmt: skip
    return token


async def confirm(client, token: str):
    return await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )


async def refresh(client, tokens: dict[str, Any]):
    return await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


async def change_password(client, tokens: dict[str, Any]):
    return await client.patch(
        "/v1/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )


async def login_answer(client, email: str):
    return await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})


async def logout(client, tokens: dict[str, Any]):
    return await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})


async def waits_or_ends(db: Engine, task: asyncio.Task, before: int) -> None:
    """Until ``task`` waits on a row lock or has ended: the second writer either stood
    behind the first one's lock, or ran to its end past it."""
    for _ in range(1000):
        if task.done() or await asyncio.to_thread(waiting_on_lock, db) > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer neither ended nor waited")


async def interleave(db: Engine, point_name: str, first, second):
    """``first`` held at ``point_name`` (inside its transaction) while ``second`` runs to
    its end or to a lock the first one holds; then the first commits. Both answers."""
    with hold(point_name) as point:
        held = asyncio.create_task(first())
        await point.wait_reached_async()
        before = await asyncio.to_thread(waiting_on_lock, db)
        other = asyncio.create_task(second())
        await waits_or_ends(db, other, before)
        point.release()
        return await held, await other


async def refused(client, tokens: dict[str, Any]) -> bool:
    """Neither the refresh token nor the access token of ``tokens`` works any more."""
    again = await refresh(client, tokens)
    me = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))
    return again.status == 401 and me.status == 401


def verify_violations(db: Engine) -> list[str]:
    report = Report()
    with Session(db) as session:
        check_sessions(session, report)
    return report.violations


async def signed_in(client) -> tuple[dict, dict]:
    user = await register(client)
    return user, await login(client, user["email"])


# -- a password reset -------------------------------------------------------------------


async def test_a_refresh_committing_during_a_reset_leaves_no_working_token(client, db):
    # Given a signed-in device whose refresh is written but not committed
    user, device = await signed_in(client)
    token = reset_token(db, user["id"])

    # When the reset is confirmed meanwhile
    refreshed, done = await interleave(
        db, "refresh.before_commit", lambda: refresh(client, device),
        lambda: confirm(client, token),
    )  # fmt: skip

    # Then the reset went through, and what the refresh issued works no more
    assert done.status == 204, await done.text()
    assert refreshed.status == 200, await refreshed.text()
    assert await refused(client, await refreshed.json())
    assert await refused(client, device)
    assert verify_violations(db) == []


async def test_a_refresh_arriving_during_a_reset_is_refused(client, db):
    user, device = await signed_in(client)
    token = reset_token(db, user["id"])

    done, refreshed = await interleave(
        db, "confirm_reset.before_commit", lambda: confirm(client, token),
        lambda: refresh(client, device),
    )  # fmt: skip

    assert done.status == 204, await done.text()
    assert refreshed.status == 401
    assert await refused(client, device)
    assert verify_violations(db) == []


async def test_a_login_with_the_old_password_checked_before_a_reset_gets_no_session(client, db):
    # Given a login whose password check passed, before it writes its session
    user = await register(client)
    token = reset_token(db, user["id"])

    # When the reset is confirmed meanwhile
    logged_in, done = await interleave(
        db, "login.verified", lambda: login_answer(client, user["email"]),
        lambda: confirm(client, token),
    )  # fmt: skip

    # Then the login is refused: the password it checked is no longer the account's
    assert done.status == 204, await done.text()
    assert logged_in.status == 401
    assert (await logged_in.json())["error"]["code"] == "invalid_credentials"
    assert verify_violations(db) == []


async def test_a_login_committing_during_a_reset_leaves_no_working_token(client, db):
    user = await register(client)
    token = reset_token(db, user["id"])

    logged_in, done = await interleave(
        db, "login.before_commit", lambda: login_answer(client, user["email"]),
        lambda: confirm(client, token),
    )  # fmt: skip

    assert done.status == 204, await done.text()
    assert logged_in.status == 200, await logged_in.text()
    assert await refused(client, await logged_in.json())
    assert verify_violations(db) == []


async def test_two_confirmations_for_one_account_at_once_never_deadlock(client, db):
    # Given two reset tokens of one account, and its row held by someone else
    user, device = await signed_in(client)
    first, second = reset_token(db, user["id"]), reset_token(db, user["id"])
    with db.connect() as holder:
        holder.execute(
            text("SELECT 1 FROM users WHERE id = :id FOR UPDATE"), {"id": uuid.UUID(user["id"])}
        )
        before = await asyncio.to_thread(waiting_on_lock, db)
        # When both are confirmed at once: both stand in line behind the holder
        confirming = [asyncio.create_task(confirm(client, t)) for t in (first, second)]
        for _ in range(1000):
            if await asyncio.to_thread(waiting_on_lock, db) >= before + 2:
                break
            assert not any(task.done() for task in confirming), "a confirmation did not wait"
            await asyncio.sleep(0.01)
        holder.commit()
        answers = await asyncio.gather(*confirming)

    # Then one of them sets the password, the other is told its token is spent: no 500
    assert sorted(answer.status for answer in answers) == [204, 400], [
        await answer.text() for answer in answers
    ]
    assert await refused(client, device)


# -- a password change ------------------------------------------------------------------


async def test_a_refresh_committing_during_a_password_change_leaves_no_working_token(client, db):
    # Given a second device whose refresh is written but not committed
    user, laptop = await signed_in(client)
    phone = await login(client, user["email"])

    # When the password is changed on the laptop meanwhile
    refreshed, changed = await interleave(
        db, "refresh.before_commit", lambda: refresh(client, phone),
        lambda: change_password(client, laptop),
    )  # fmt: skip

    # Then the phone is signed out, with what its refresh issued
    assert changed.status == 200, await changed.text()
    assert refreshed.status == 200, await refreshed.text()
    assert await refused(client, await refreshed.json())
    assert await refused(client, phone)
    await login(client, user["email"], NEW_PASSWORD)
    assert verify_violations(db) == []


async def test_a_refresh_arriving_during_a_password_change_is_refused(client, db):
    user, laptop = await signed_in(client)
    phone = await login(client, user["email"])

    changed, refreshed = await interleave(
        db, "update_me.before_commit", lambda: change_password(client, laptop),
        lambda: refresh(client, phone),
    )  # fmt: skip

    assert changed.status == 200, await changed.text()
    assert refreshed.status == 401
    assert await refused(client, phone)
    assert verify_violations(db) == []


# -- a logout ---------------------------------------------------------------------------


async def test_a_refresh_committing_during_a_logout_of_its_session_leaves_no_refresh_token(
    client, db
):
    # Given a device whose refresh (a background timer) is written but not committed
    _user, device = await signed_in(client)

    # When the customer signs out of that session meanwhile
    refreshed, out = await interleave(
        db, "refresh.before_commit", lambda: refresh(client, device),
        lambda: logout(client, device),
    )  # fmt: skip

    # Then the session is over: the refresh token the refresh issued is refused too
    assert out.status == 204
    assert refreshed.status == 200, await refreshed.text()
    assert (await refresh(client, await refreshed.json())).status == 401


async def test_a_refresh_arriving_during_a_logout_is_refused(client, db):
    _user, device = await signed_in(client)

    out, refreshed = await interleave(
        db, "logout.before_commit", lambda: logout(client, device),
        lambda: refresh(client, device),
    )  # fmt: skip

    assert out.status == 204
    assert refreshed.status == 401


# -- a spent refresh token presented again ----------------------------------------------


async def test_a_refresh_committing_during_reuse_detection_leaves_no_refresh_token(client, db):
    # Given a session rotated once (the spent token was stolen), whose owner's next
    # refresh is written but not committed
    _user, first = await signed_in(client)
    second = await (await refresh(client, first)).json()

    # When the thief presents the spent token meanwhile
    refreshed, stolen = await interleave(
        db, "refresh.before_commit", lambda: refresh(client, second),
        lambda: refresh(client, first),
    )  # fmt: skip

    # Then the whole session is revoked, the token the owner's refresh issued included
    assert (await stolen.json())["error"]["code"] == "refresh_token_reused"
    assert refreshed.status == 200, await refreshed.text()
    assert (await refresh(client, await refreshed.json())).status == 401


async def test_a_refresh_arriving_during_reuse_detection_is_refused(client, db):
    _user, first = await signed_in(client)
    second = await (await refresh(client, first)).json()

    stolen, refreshed = await interleave(
        db, "refresh.before_commit", lambda: refresh(client, first),
        lambda: refresh(client, second),
    )  # fmt: skip

    assert (await stolen.json())["error"]["code"] == "refresh_token_reused"
    assert refreshed.status == 401


# -- what fulfillment verify sees -------------------------------------------------------


async def test_verify_reports_a_session_a_new_password_missed_and_a_token_left_in_a_mail(
    client, db
):
    # Given a live session its account's new password did not end (as before the account
    # lock), and a reset mail claimed for sending that kept its token
    user, _device = await signed_in(client)
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET token_version = token_version + 1"))
        conn.execute(
            text("INSERT INTO notifications (dedup_key, kind, user_id, data, status)"
                 " VALUES ('k', 'password_reset', :user, '{\"token\": \"prt_x\"}', 'sending')"),
            {"user": uuid.UUID(user["id"])},
        )  # fmt: skip

    # When verify looks, then it reports both
    violations = verify_violations(db)
    assert len(violations) == 2, violations
    assert user["id"] in violations[0] and "older than the account's 1" in violations[0]
    assert "password_reset, sending) still holds its secret" in violations[1]
