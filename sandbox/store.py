"""What the sandbox holds, kept in a small SQLite file so that it survives a restart, as
the real providers' records do: Stripe's PaymentIntents, Charges, Refunds (and when
each one under way settles), tax calculations and transactions, idempotency keys,
webhook endpoints and events, the mail SendGrid took, EasyPost's shipments and trackers. ``fulfillment verify`` and refunds of earlier payments rely on them.

The ledgers ``put`` each object they create or change; the object is written when the
request (or tracker tick) that changed it is done (``flush``), one transaction for all
of them, as JSON. Without a path the store keeps nothing (the tests' default).
Not kept: the request journal, webhook deliveries still being retried, and the clock
offset of the control API.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
)
"""
UPSERT = """
INSERT INTO objects (kind, id, seq, body) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body
"""


class Store:
    def __init__(self, path: Path | str | None = None) -> None:
        self._db: sqlite3.Connection | None = None
        self._dirty: dict[tuple[str, str], Any] = {}
        self._deleted: set[tuple[str, str]] = set()
        self._seq = 0
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            row = self._db.execute("SELECT coalesce(max(seq), 0) FROM objects").fetchone()
            self._seq = row[0]

    @property
    def keeps(self) -> bool:
        return self._db is not None

    def put(self, kind: str, object_id: str, obj: Any) -> None:
        """Write ``obj`` (as it is at the next flush) under (kind, id)."""
        if self._db is not None:
            self._deleted.discard((kind, object_id))
            self._dirty[(kind, object_id)] = obj

    def delete(self, kind: str, object_id: str) -> None:
        if self._db is not None:
            self._dirty.pop((kind, object_id), None)
            self._deleted.add((kind, object_id))

    def flush(self) -> None:
        if self._db is None or not (self._dirty or self._deleted):
            return
        dirty, self._dirty = self._dirty, {}
        deleted, self._deleted = self._deleted, set()
        rows = []
        for (kind, object_id), obj in dirty.items():
            self._seq += 1
            rows.append((kind, object_id, self._seq, json.dumps(obj, separators=(",", ":"))))
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(UPSERT, rows)
            self._db.executemany("DELETE FROM objects WHERE kind = ? AND id = ?", deleted)

    def load(self, kind: str) -> dict[str, Any]:
        """Every object of ``kind``, in the order they were first written."""
        if self._db is None:
            return {}
        rows = self._db.execute(
            "SELECT id, body FROM objects WHERE kind = ? ORDER BY seq", (kind,)
        ).fetchall()
        return {object_id: json.loads(body) for object_id, body in rows}

    def discard_pending(self) -> None:
        self._dirty.clear()
        self._deleted.clear()

    def clear(self) -> None:
        """Forget everything (``/_sandbox/reset``)."""
        self.discard_pending()
        if self._db is not None:
            self._db.execute("DELETE FROM objects")

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None
