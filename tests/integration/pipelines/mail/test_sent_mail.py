"""E-mails marked sent in groups: every one recorded is written, in one transaction, and
none is lost when the database refuses a write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.models import Notification, User
from pipelines.mail.sent import SentMailLog


@pytest.fixture
def engine(db, settings):
    engine = create_sync_db_engine(settings, pool_size=2)
    yield engine
    engine.dispose()


def claimed_mails(engine, count: int) -> list[int]:
    with Session(engine) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:10]}@example.com", password_hash="-",
                    first_name="Ada", last_name="Lovelace")  # fmt: skip
        session.add(user)
        session.flush()
        return list(session.scalars(insert(Notification).returning(Notification.id), [
            {"dedup_key": f"user_{user.id}_k{i}", "kind": "welcome", "user_id": user.id,
             "status": "sending"} for i in range(count)
        ]))  # fmt: skip


def statuses(engine) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        return session.execute(
            select(Notification.status, Notification.provider_message_id).order_by(Notification.id)
        ).all()


def test_every_recorded_mail_is_marked_sent_with_its_message_id_in_one_write(engine):
    # Given three claimed e-mails that SendGrid took, recorded but not yet written
    ids = claimed_mails(engine, 3)
    log = SentMailLog(sync_session_factory(engine), every=3600)
    for i in ids:
        log.record(i, message_id=f"msg-{i}", sent_at=datetime.now(UTC))
    assert statuses(engine) == [("sending", None)] * 3

    # When the log writes what gathered
    written = log.flush()

    # Then each is sent with its own message id, and nothing is left to write
    assert written == 3
    assert statuses(engine) == [("sent", f"msg-{i}") for i in ids]
    assert log.flush() == 0
    log.close()


def test_mails_the_database_would_not_take_are_written_on_the_next_try(engine):
    # Given a recorded e-mail and a database that refuses the write
    (mail,) = claimed_mails(engine, 1)
    log = SentMailLog(sync_session_factory(engine), every=3600)
    log.record(mail, message_id="msg-1", sent_at=datetime.now(UTC))
    with engine.begin() as conn:
        conn.execute(
            text("ALTER TABLE notifications ADD CONSTRAINT no_sent CHECK (status <> 'sent')")
        )
    try:
        with pytest.raises(Exception, match="no_sent"):
            log.flush()
        assert statuses(engine) == [("sending", None)]
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE notifications DROP CONSTRAINT no_sent"))

    # When it tries again
    assert log.flush() == 1

    # Then the e-mail is recorded as sent
    assert statuses(engine) == [("sent", "msg-1")]
    log.close()
