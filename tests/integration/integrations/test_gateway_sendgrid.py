"""The SendGrid mailer against the sandbox, through the official SDK, over loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from integrations.errors import PermanentProviderError, TransientProviderError
from integrations.ports import NotificationKind
from integrations.sendgrid_gateway import SendGridMailer, build_sendgrid_mailer
from integrations.sendgrid_templates import template_name
from sandbox.sendgrid.templates import installed_id
from tests.support.sandbox import (
    FAST_RETRIES,
    TEST_TIMEOUT,
    RunningSandbox,
    running_sandbox,
    wait_for,
)

#: Mail Send, as the sandbox's journal and faults name it.
MAIL_SEND = "POST /sendgrid/v3/mail/send"


def mail_sends(sandbox: RunningSandbox) -> list[dict]:
    """The Mail Send requests (the mailer also lists the templates once)."""
    return [r for r in sandbox.requests("sendgrid") if f"{r['method']} {r['path']}" == MAIL_SEND]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def mailer(sandbox: RunningSandbox) -> SendGridMailer:
    sandbox.reset()
    return build_sendgrid_mailer(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)


def test_an_order_mail_carries_its_order_kind_and_dedup_key(sandbox, mailer):
    # Given a shipped order
    order_id = str(uuid.uuid4())

    # When the customer is told
    sent = mailer.send(
        NotificationKind.SHIPPED,
        to_email="ada@example.com",
        to_name="Ada Lovelace",
        order_id=order_id,
        user_id="u-1",
        data={"tracking_code": "9400123"},
    )

    # Then SendGrid received one dynamic-template mail tagged for de-duplication
    (message,) = sandbox.messages()
    assert sent.message_id == message["msg_id"]
    assert sent.dedup_key == f"order_{order_id}_shipped"
    assert message["to_email"] == "ada@example.com"
    assert message["template_id"] == installed_id(template_name("shipped"))
    assert message["dynamic_template_data"] == {"tracking_code": "9400123"}
    rendered = wait_for(lambda: sandbox.messages()[0]["rendered"], what="the mail rendered")
    assert "9400123" in rendered["plain"]
    assert message["custom_args"] == {
        "kind": "shipped",
        "dedup_key": f"order_{order_id}_shipped",
        "order_id": order_id,
        "user_id": "u-1",
    }


def test_a_welcome_mail_is_keyed_by_the_user(sandbox, mailer):
    # When a new customer is welcomed
    sent = mailer.send("welcome", to_email="grace@example.com", user_id="u-42")

    # Then the key is the user's, and no order is mentioned
    (message,) = sandbox.messages()
    assert sent.dedup_key == "user_u-42_welcome"
    assert message["custom_args"] == {
        "kind": "welcome",
        "dedup_key": "user_u-42_welcome",
        "user_id": "u-42",
    }


def test_a_payload_sendgrid_refuses_is_a_permanent_error(sandbox, mailer):
    # When a mail goes to an address SendGrid cannot use
    with pytest.raises(PermanentProviderError) as raised:
        mailer.send("order_confirmed", to_email="not-an-address", order_id="o-1")

    # Then SendGrid's own field and message come back, after one try, and nothing is sent
    error = raised.value
    assert (error.http_status, error.code) == (400, "personalizations.0.to.0.email")
    assert "valid address" in error.message
    assert len(mail_sends(sandbox)) == 1
    assert sandbox.messages() == []


def test_a_sendgrid_outage_surfaces_as_transient(sandbox, mailer):
    # Given SendGrid answers 500 for a while
    sandbox.set_faults(sendgrid={"fail_next": 10, "error_status": 500, "paths": [MAIL_SEND]})

    # When a mail is sent
    with pytest.raises(TransientProviderError) as raised:
        mailer.send("delivered", to_email="ada@example.com", order_id="o-2")

    # Then it was tried a few times and is left for the long retry
    assert raised.value.http_status == 500
    assert len(mail_sends(sandbox)) == FAST_RETRIES.attempts


def test_mails_share_one_kept_alive_connection_and_a_timeout_is_told_apart(sandbox, mailer):
    # Given three mails sent one after the other
    for n in range(3):
        mailer.send("delivered", to_email="ada@example.com", order_id=f"o-keep-{n}")
    # Then they went over one connection (urllib opened one per mail)
    assert len(mail_sends(sandbox)) == 3
    assert mailer._opener.connections_opened == 1

    # When SendGrid then takes longer than the timeout to answer
    sandbox.set_faults(sendgrid={"timeout_rate": 1.0, "timeout_seconds": TEST_TIMEOUT + 0.5,
                                 "paths": [MAIL_SEND]})  # fmt: skip
    with pytest.raises(TransientProviderError) as raised:
        mailer.send("delivered", to_email="ada@example.com", order_id="o-keep-late")
    # Then it is a timeout (the mail may have gone: not resent in-call), and the next
    # mail, SendGrid answering again, goes through
    assert raised.value.code == "timeout"
    sandbox.set_faults(sendgrid={"timeout_rate": 0.0})
    mailer.send("delivered", to_email="ada@example.com", order_id="o-keep-after")
