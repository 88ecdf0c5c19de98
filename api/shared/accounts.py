"""What this API process knows of the accounts it has seen: active or not, and their
role, kept until the database says the account changed.

A trigger (migration 0005) sends ``NOTIFY account_changed, '<user id>'`` when an account
is disabled, enabled, deleted or changes role (and, migration 0008, when a password
reset revokes its tokens), as the change commits. The listener
forgets that account, and every request first takes in whatever notification has
reached the listener's socket (a non-blocking read, no round trip), so the next request
reads the account again: a disabled account is refused from the next request on. While the listener is not connected
nothing is kept (every request reads its account), and a connection that comes back
starts from nothing: a notification missed meanwhile cannot leave a stale entry. An
entry is also read again after ``MAX_AGE_SECONDS`` whatever happens, in case a
connection died without the listener noticing.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import structlog

log = structlog.get_logger("api.accounts")

#: The channel the trigger notifies.
CHANNEL = "account_changed"
#: The longest an entry is trusted without a word from the database.
MAX_AGE_SECONDS = 60.0
#: Entries kept at most; past it the process starts afresh.
MAX_ENTRIES = 100_000
#: Seconds between attempts to listen again after the connection was lost.
RECONNECT_SECONDS = 1.0

#: (is_active, role, token_version) of an account.
AccountState = tuple[bool, str, int]


class AccountStates:
    def __init__(self) -> None:
        self._known: dict[uuid.UUID, tuple[AccountState, float]] = {}
        self._generation = 0
        self.listening = False
        #: The listening connection's libpq handle, for ``take_in``.
        self._pgconn: psycopg.pq.abc.PGconn | None = None

    @property
    def generation(self) -> int:
        """Changes whenever an account changes: a state read from the database before
        a change is not kept after it (see ``keep``)."""
        return self._generation

    def get(self, user_id: uuid.UUID) -> AccountState | None:
        self.take_in()
        entry = self._known.get(user_id) if self.listening else None
        if entry is None or time.monotonic() - entry[1] > MAX_AGE_SECONDS:
            return None
        return entry[0]

    def keep(self, user_id: uuid.UUID, state: AccountState, *, read_at: int) -> None:
        """Keep ``state``, read from the database when ``generation`` was ``read_at``,
        unless an account changed since (it may have been this one)."""
        if not self.listening or read_at != self._generation:
            return
        if len(self._known) >= MAX_ENTRIES:
            self._known.clear()
        self._known[user_id] = (state, time.monotonic())

    def changed(self, user_id: uuid.UUID | None) -> None:
        """Forget ``user_id`` (None: every account)."""
        self._generation += 1
        if user_id is None:
            self._known.clear()
        else:
            self._known.pop(user_id, None)

    def hear(self, pgconn: psycopg.pq.abc.PGconn) -> None:
        self.changed(None)  # anything kept before listening may be stale
        self._pgconn = pgconn
        self.listening = True

    def deaf(self) -> None:
        self.listening = False
        self._pgconn = None
        self.changed(None)

    def take_in(self) -> None:
        """Apply the notifications already on the listener's socket, without waiting."""
        pgconn = self._pgconn
        if pgconn is None:
            return
        try:
            pgconn.consume_input()
        except psycopg.OperationalError:
            self.deaf()
            return
        while (notice := pgconn.notifies()) is not None:
            self.changed(_user_id(notice.extra.decode()))


async def listen(states: AccountStates, libpq_url: str) -> None:
    """Forget each account the database announces as changed; reconnect when the
    connection is lost, keeping nothing meanwhile."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                libpq_url, autocommit=True, connect_timeout=3
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                states.hear(conn.pgconn)
                async for notice in conn.notifies():
                    states.changed(_user_id(notice.payload))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: every request reads again
            log.warning("account_listener_lost", error=f"{type(exc).__name__}: {exc}")
        finally:
            states.deaf()
        await asyncio.sleep(RECONNECT_SECONDS)


def _user_id(payload: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(payload)
    except ValueError:
        return None  # not ours to read: forget everything
