"""The outbox relay: sends committed outbox rows to the broker.

It wakes on the outbox trigger's NOTIFY and also sweeps on a timer, so a row written
while the broker was down, or while no relay was listening, is still delivered. Rows
are claimed with ``FOR UPDATE SKIP LOCKED``, so several schedulers can relay at once.
A row is marked delivered only after the broker took it: a crash in between sends it
again, which the idempotent steps absorb.
"""

from __future__ import annotations

import threading

import dramatiq
import psycopg
import structlog
from sqlalchemy import BigInteger, Engine, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from fulfillment.models import OutboxMessage
from fulfillment.outbox import OUTBOX_CHANNEL
from pipelines import sql

log = structlog.get_logger("workers.relay")

#: Rows delivered per transaction.
BATCH_SIZE = 500
#: How long a pass waits after the first NOTIFY for more rows to commit: the latency
#: it adds to a message, which caps the relay at 1 / GATHER_SECONDS passes a second.
GATHER_SECONDS = 0.05

#: The oldest rows not yet delivered that no other relay holds.
_PENDING = (
    select(OutboxMessage.id, OutboxMessage.queue_name, OutboxMessage.actor_name,
           OutboxMessage.kwargs, OutboxMessage.request_id)
    .where(OutboxMessage.delivered_at.is_(None))
    .order_by(OutboxMessage.id).limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)  # fmt: skip
_DELIVERED = (
    update(OutboxMessage)
    .where(OutboxMessage.id == any_(bindparam("b_ids", type_=ARRAY(BigInteger))))
    .values(delivered_at=func.now(), attempts=OutboxMessage.attempts + 1)
)  # fmt: skip


class OutboxRelay:
    def __init__(self, engine: Engine, broker: dramatiq.Broker, *, batch_size: int = BATCH_SIZE):
        self.engine = engine
        self.broker = broker
        self.batch_size = batch_size

    def deliver_pending(self) -> int:
        """Deliver until nothing is left; returns how many rows went out."""
        delivered = 0
        while True:
            count = self._deliver_batch()
            delivered += count
            if count < self.batch_size:
                return delivered

    def _deliver_batch(self) -> int:
        with self.engine.begin() as conn:
            rows = sql.rows(conn, _PENDING, {"b_limit": self.batch_size})
            for row in rows:
                self.broker.declare_queue(row.queue_name)
                self.broker.enqueue(
                    dramatiq.Message(queue_name=row.queue_name, actor_name=row.actor_name,
                                     args=(), kwargs=row.kwargs, options=_options(row))
                )  # fmt: skip
            if rows:
                sql.run(conn, _DELIVERED, {"b_ids": [row.id for row in rows]})
        return len(rows)


def _options(row) -> dict[str, str]:
    """Message options from the row: the request id, so worker logs carry it."""
    return {"request_id": row.request_id} if row.request_id else {}


def listen_and_relay(
    relay: OutboxRelay, *, libpq_url: str, sweep_seconds: float, stop: threading.Event
) -> None:
    """Deliver on every NOTIFY, and every ``sweep_seconds`` regardless. Survives the
    database or the broker going away: it logs, waits, and tries again."""
    while not stop.is_set():
        try:
            with psycopg.connect(libpq_url, autocommit=True) as conn:
                conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                while not stop.is_set():
                    relay.deliver_pending()
                    for _ in conn.notifies(timeout=sweep_seconds, stop_after=1):
                        pass
                    # the rows committed in the next few milliseconds join this pass: one
                    # transaction for many rows under load, instead of one per commit
                    stop.wait(GATHER_SECONDS)
                    for _ in conn.notifies(timeout=0):
                        pass
        except Exception as exc:  # broker or database down: keep trying
            log.warning("outbox_relay_error", error=f"{type(exc).__name__}: {exc}")
            stop.wait(min(sweep_seconds, 1.0))
