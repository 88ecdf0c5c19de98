"""The e-mail steps (``send_notification``, ``send_welcome_email``): one e-mail however
often the message runs; one SendGrid did not take is sent on the retry, one it
refused is not."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Notification
from fulfillment.states import OrderStatus as S
from integrations.errors import TransientProviderError
from pipelines.common import SKIPPED, SUCCESS
from pipelines.mail.notify import send_notification, send_welcome_email
from tests.support.fakes import permanent, transient
from tests.support.steps import DELIVERIES, given_order, new_customer, notification_of, outbox


@DELIVERIES
def test_send_notification_sends_one_email(deps, engine, mailer, run):
    # Given a paid order whose confirmation SendGrid did not take when the step sent it
    mailer.fail_next(transient("sendgrid", "send_mail"))
    order_id, _ = given_order(deps, engine, at=S.FULFILLING)
    mail = notification_of(engine, order_id, "order_confirmed")
    # so it went back to pending, with a message to send it again
    assert (mail.status, mailer.kinds(order_id=order_id)) == ("pending", [])
    assert outbox(engine, m.SEND_NOTIFICATION, notification_id=str(mail.id)) == 1

    # When its send message is delivered more than once
    outcomes = run(lambda: send_notification(deps, str(mail.id)))

    # Then SendGrid gets one e-mail, and the notification records it
    assert outcomes.count(SUCCESS) == 1
    assert mailer.kinds(order_id=order_id) == ["order_confirmed"]
    sent = notification_of(engine, order_id, "order_confirmed")
    assert sent.status == "sent" and sent.provider_message_id == mailer.sent[0].message_id


@DELIVERIES
def test_send_welcome_email_welcomes_once(deps, engine, mailer, run):
    # Given a new customer
    customer = new_customer(engine)

    # When their welcome message is delivered more than once
    outcomes = run(lambda: send_welcome_email(deps, str(customer)))

    # Then they get one welcome e-mail
    assert outcomes.count(SUCCESS) == 1
    assert mailer.kinds(user_id=str(customer)) == ["welcome"]
    with Session(engine) as session:
        rows = session.scalars(select(Notification).where(Notification.user_id == customer)).all()
    assert [(row.kind, row.status) for row in rows] == [("welcome", "sent")]


def test_a_mail_sendgrid_did_not_take_is_sent_on_the_retry_and_a_refused_one_is_not(
    deps, engine, mailer
):
    # Given SendGrid down, then refusing, as two orders are paid: the steps' own sends
    mailer.fail_next(transient("sendgrid", "send_mail"))
    first, _ = given_order(deps, engine, at=S.FULFILLING)
    mailer.fail_next(permanent("sendgrid", "send_mail", "to.email"))
    second, _ = given_order(deps, engine, at=S.FULFILLING)

    # Then the first went back to pending with the error and a message to send it again,
    # and the refused one is marked failed, with nothing to send it again
    waiting = notification_of(engine, first, "order_confirmed")
    assert (waiting.status, "service unavailable" in waiting.error) == ("pending", True)
    assert outbox(engine, m.SEND_NOTIFICATION, notification_id=str(waiting.id)) == 1
    refused = notification_of(engine, second, "order_confirmed")
    assert refused.status == "failed"
    assert outbox(engine, m.SEND_NOTIFICATION, notification_id=str(refused.id)) == 0

    # When the first's message runs while SendGrid is still down, then is retried
    mailer.fail_next(transient("sendgrid", "send_mail"))
    with pytest.raises(TransientProviderError):
        send_notification(deps, str(waiting.id))
    assert notification_of(engine, first, "order_confirmed").status == "pending"
    retried = send_notification(deps, str(waiting.id), attempt=2)

    # Then it was sent once on the retry
    assert retried == SUCCESS and mailer.kinds(order_id=first) == ["order_confirmed"]
    assert notification_of(engine, first, "order_confirmed").status == "sent"
    # and the refused one is not sent again, even when asked to
    assert send_notification(deps, str(refused.id)) == SKIPPED
    assert mailer.kinds(order_id=second) == []
    assert notification_of(engine, second, "order_confirmed").status == "failed"
