"""Marking e-mails sent, in groups: the one write left after a send is not worth a commit
of its own on the order's path. A worker process records each e-mail SendGrid took and
writes what has gathered every ``every`` seconds (1 s) in one transaction and one
UPDATE (the rows as arrays, unnested).

The at-most-once rule does not depend on it: an e-mail is claimed (``sending``) in a
committed transaction before it is sent, and nothing resends a ``sending`` e-mail. A
process killed before its next write leaves the e-mails it sent in that window
``sending`` (sent, without SendGrid's message id), as a kill in the middle of a send
always did.
"""

from __future__ import annotations

import atexit
import threading
from datetime import datetime

import structlog
from sqlalchemy import BigInteger, DateTime, String, bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from fulfillment.models import Notification
from pipelines import sql

log = structlog.get_logger("pipelines.sent_mail")

#: The e-mails sent, as (id, SendGrid message id, sent at) rows.
_SENT = func.unnest(
    bindparam("b_ids", type_=ARRAY(BigInteger)), bindparam("b_messages", type_=ARRAY(String)),
    bindparam("b_ats", type_=ARRAY(DateTime(timezone=True))),
).table_valued("id", "message_id", "at").render_derived()  # fmt: skip
#: Each of them marked sent.
_MARK_SENT = (
    update(Notification)
    .where(Notification.id == _SENT.c.id, Notification.status == "sending")
    .values(status="sent", provider_message_id=_SENT.c.message_id, sent_at=_SENT.c.at,
            error=None)  # a secret it carried left the row with its claim (pipelines.mail.notify)
)  # fmt: skip


class SentMailLog:
    def __init__(self, sessions: sessionmaker[Session], *, every: float = 1.0) -> None:
        self._sessions = sessions
        self._every = every
        self._lock = threading.Lock()
        self._gathered: list[tuple[int, str | None, datetime]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sent-mail", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def record(self, notification_id: int, *, message_id: str | None, sent_at: datetime) -> None:
        with self._lock:
            self._gathered.append((int(notification_id), message_id, sent_at))

    def flush(self) -> int:
        """Write what has gathered; what could not be written is kept for the next try."""
        with self._lock:
            rows, self._gathered = self._gathered, []
        if not rows:
            return 0
        try:
            ids, messages, ats = (list(column) for column in zip(*rows, strict=True))
            with self._sessions.begin() as session:
                sql.run(session, _MARK_SENT, {"b_ids": ids, "b_messages": messages, "b_ats": ats})
        except Exception:
            with self._lock:
                self._gathered[:0] = rows
            raise
        return len(rows)

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:
            log.exception("sent e-mails not recorded at exit")

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.flush()
            except Exception:  # the database is away: keep them, try again
                log.warning("sent e-mails not recorded yet", exc_info=True)
