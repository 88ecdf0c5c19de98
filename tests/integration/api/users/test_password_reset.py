"""Password reset by e-mail, through the real API, the real notification step and the
SendGrid sandbox: the mail carries a single-use token that sets a new password once,
ends every session and every access token issued before it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.app import create_app
from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.models import Notification, OutboxMessage, PasswordReset, User
from integrations.easypost_gateway import build_easypost_carrier
from integrations.errors import TransientProviderError
from integrations.sendgrid_gateway import build_sendgrid_mailer
from integrations.stripe_gateway import build_stripe_gateway
from pipelines.deps import Deps
from pipelines.mail.notify import send_claimed, send_notification
from tests.support.sandbox import FAST_RETRIES, RunningSandbox, running_sandbox
from tests.support.storefront import PASSWORD, bearer, login, register

NEW_PASSWORD = "a brand new passphrase"

#: Seconds a mail to the sandbox may take: generous, the machine may be busy.
MAIL_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def deps(sandbox, settings, db) -> Iterator[Deps]:
    """The notification step's world: the test database and the sandbox's SendGrid."""
    sandbox.reset()
    providers = sandbox.settings()
    engine = create_sync_db_engine(settings, pool_size=2)
    yield Deps(sessions=sync_session_factory(engine), payments=build_stripe_gateway(providers),
               mailer=build_sendgrid_mailer(providers, timeout=MAIL_TIMEOUT),
               carrier=build_easypost_carrier(providers), settings=settings,
               send_mail=send_claimed)  # fmt: skip
    engine.dispose()


async def ask_reset(client, email: str) -> tuple[int, Any]:
    response = await client.post("/v1/auth/password-reset", json={"email": email})
    return response.status, await response.json()


async def confirm(client, token: str, password: str = NEW_PASSWORD):
    return await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": password}
    )


def reset_mails(db) -> list[Notification]:
    with Session(db) as session:
        return list(
            session.scalars(select(Notification).where(Notification.kind == "password_reset"))
        )


def password_hash(db, user_id: str) -> str:
    with Session(db) as session:
        return session.get(User, uuid.UUID(user_id)).password_hash


async def mailed_token(client, db, deps: Deps, sandbox: RunningSandbox, email: str) -> str:
    """Ask for a reset and run the notification step its outbox message asks for; the
    token, as the customer reads it in the mail SendGrid took."""
    assert (await ask_reset(client, email))[0] == 202
    (mail,) = [m for m in reset_mails(db) if m.status == "pending"]
    with Session(db) as session:
        queued = session.scalars(select(OutboxMessage.kwargs)
                                 .where(OutboxMessage.actor_name == "send_notification")).all()  # fmt: skip
    assert {"notification_id": str(mail.id)} in queued
    assert await asyncio.to_thread(send_notification, deps, str(mail.id)) == "success"
    (message,) = [m for m in sandbox.messages() if m["to_email"] == email
                  and m["custom_args"]["kind"] == "password_reset"]  # fmt: skip
    assert message["custom_args"]["dedup_key"] == mail.dedup_key
    data = message["dynamic_template_data"]
    assert data["reset_url"].endswith(f"?token={data['token']}")
    return data["token"]


async def test_a_reset_sets_the_new_password_once_and_ends_every_session(client, db, deps,
                                                                         sandbox):  # fmt: skip
    # Given a customer signed in on a device
    user = await register(client)
    session = await login(client, user["email"])

    # When they ask for a reset and follow the link in the mail
    token = await mailed_token(client, db, deps, sandbox, user["email"])
    done = await confirm(client, token)

    # Then the new password works and the old one no longer does
    assert done.status == 204, await done.text()
    await login(client, user["email"], NEW_PASSWORD)
    old = await client.post("/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status == 401
    # and the device is signed out: its refresh token and its access token are refused
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status == 401
    me = await client.get("/v1/users/me", headers=bearer(session["access_token"]))
    assert me.status == 401
    # the token is spent: a second confirmation is refused and changes nothing
    hash_before = password_hash(db, user["id"])
    again = await confirm(client, token, "yet another passphrase")
    assert again.status == 400
    assert (await again.json())["error"]["code"] == "invalid_token"
    assert password_hash(db, user["id"]) == hash_before
    # and the token left the notification row with the mail
    (mail,) = reset_mails(db)
    assert mail.status == "sent" and "token" not in mail.data and "reset_url" not in mail.data


class DiedBeforeItsFlush:
    """The sent-mail log of a worker process that died after SendGrid took the mail and
    before its next write (``pipelines.mail.sent``): what it recorded is lost with it."""

    def record(self, notification_id: int, *, message_id: str | None, sent_at: object) -> None:
        pass


def sent_reset_mails(sandbox: RunningSandbox, email: str) -> list[dict]:
    return [m for m in sandbox.messages() if m["to_email"] == email
            and m["custom_args"]["kind"] == "password_reset"]  # fmt: skip


async def test_a_worker_dying_between_the_send_and_its_write_leaves_no_token_behind(
    client, db, deps, sandbox
):
    # Given a reset mail waiting to be sent
    user = await register(client)
    assert (await ask_reset(client, user["email"]))[0] == 202
    (mail,) = reset_mails(db)

    # When a worker sends it and dies before it could mark it sent
    dying = dataclasses.replace(deps, sent_mail=DiedBeforeItsFlush())
    assert await asyncio.to_thread(send_notification, dying, str(mail.id)) == "success"

    # Then the customer has the mail with its token, and the row left ``sending`` holds
    # neither the token nor the link
    (message,) = sent_reset_mails(sandbox, user["email"])
    (mail,) = reset_mails(db)
    assert mail.status == "sending"
    assert "token" not in mail.data and "reset_url" not in mail.data
    done = await confirm(client, message["dynamic_template_data"]["token"])
    assert done.status == 204, await done.text()


async def test_a_reset_mail_sendgrid_did_not_take_keeps_its_token_for_the_retry(
    client, db, deps, sandbox
):
    # Given a reset mail, and SendGrid answering 500 for a while
    user = await register(client)
    assert (await ask_reset(client, user["email"]))[0] == 202
    (mail,) = reset_mails(db)
    sandbox.set_faults(sendgrid={"fail_next": FAST_RETRIES.attempts, "error_status": 500,
                                 "paths": ["POST /sendgrid/v3/mail/send"]})  # fmt: skip
    failing = dataclasses.replace(deps, mailer=build_sendgrid_mailer(
        sandbox.settings(), timeout=MAIL_TIMEOUT, policy=FAST_RETRIES))  # fmt: skip

    # When the send fails before SendGrid took it, and is retried later
    with pytest.raises(TransientProviderError):
        await asyncio.to_thread(send_notification, failing, str(mail.id))
    assert reset_mails(db)[0].status == "pending"
    assert await asyncio.to_thread(send_notification, deps, str(mail.id)) == "success"

    # Then the mail that went carries a token that works
    (message,) = sent_reset_mails(sandbox, user["email"])
    done = await confirm(client, message["dynamic_template_data"]["token"])
    assert done.status == 204, await done.text()
    (mail,) = reset_mails(db)
    assert mail.status == "sent" and "token" not in mail.data


async def test_an_expired_token_is_refused(client, db, deps, sandbox):
    # Given a reset token past its hour
    user = await register(client)
    token = await mailed_token(client, db, deps, sandbox, user["email"])
    with Session(db) as session, session.begin():
        session.execute(update(PasswordReset).values(expires_at=PasswordReset.created_at))

    # When it is used
    response = await confirm(client, token)

    # Then it is refused and the password is unchanged
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_token"
    await login(client, user["email"])


async def test_an_unknown_email_gets_the_same_answer_and_no_mail(client, db):
    # Given one customer
    user = await register(client)

    # When a reset is asked for their address and for one nobody has
    known = await ask_reset(client, user["email"].upper())
    unknown = await ask_reset(client, f"nobody-{uuid.uuid4().hex[:8]}@example.com")

    # Then both get the same answer, and only the customer's mail is written
    assert known == unknown
    assert known[0] == 202
    assert [m.user_id for m in reset_mails(db)] == [uuid.UUID(user["id"])]


async def test_an_unknown_token_and_a_weak_password_are_refused(client, db):
    unknown = await confirm(client, "prt_" + "x" * 43)
    assert unknown.status == 400
    assert (await unknown.json())["error"]["code"] == "invalid_token"
    weak = await confirm(client, "prt_" + "x" * 43, "short")
    assert weak.status == 422


async def test_reset_requests_are_throttled_per_address(aiohttp_client, settings, db):
    # Given an API that allows two reset requests per e-mail an hour
    client = await aiohttp_client(create_app(settings.model_copy(
        update={"password_reset_account_limit": "2/hour"})))  # fmt: skip
    email = f"{uuid.uuid4().hex[:10]}@example.com"

    # When a third comes for the same address (whether or not it has an account)
    answers = [(await ask_reset(client, email))[0] for _ in range(3)]

    # Then it is refused with 429
    assert answers == [202, 202, 429]
