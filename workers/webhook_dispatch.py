"""The scheduler's part in merchant webhooks: send the deliveries whose time has come.

A delivery's first message is written by the orders trigger; a retry (and a delivery
whose message was lost, once its lease ran out) is due at ``next_attempt_at``. Each pass
claims the due rows (``SKIP LOCKED``, so several schedulers share the work), pushes their
``next_attempt_at`` on by a lease and writes their outbox rows, in one statement; the
relay sends them on. Events are kept ``EVENT_RETENTION_DAYS`` (redelivery by time range
reaches that far back, as Stripe's event log does), then deleted with their deliveries
and attempts once none of them is still pending.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from fulfillment.merchant_events import DISPATCH_LEASE_SECONDS
from fulfillment.messages import DELIVER_WEBHOOK

#: Deliveries claimed per pass.
BATCH_SIZE = 500
#: How long events (and their delivery log) are kept.
EVENT_RETENTION_DAYS = 30

DISPATCH = text(f"""
    WITH due AS (
        SELECT id FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT {BATCH_SIZE} FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE webhook_deliveries d
        SET next_attempt_at = now() + interval '{DISPATCH_LEASE_SECONDS} seconds'
        FROM due WHERE d.id = due.id RETURNING d.id)
    INSERT INTO outbox (queue_name, actor_name, kwargs)
    SELECT '{DELIVER_WEBHOOK[1]}', '{DELIVER_WEBHOOK[0]}',
           jsonb_build_object('delivery_id', claimed.id::text)
    FROM claimed
""")


def dispatch_due(engine: Engine) -> int:
    """Queue every due delivery; how many went out."""
    sent = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(DISPATCH).rowcount
        sent += count
        if count < BATCH_SIZE:
            return sent


FORGET = text(f"""
    DELETE FROM merchant_events e
    WHERE e.created_at < now() - interval '{EVENT_RETENTION_DAYS} days'
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.event_id = e.id AND d.status = 'pending')
""")


def clean_up(engine: Engine) -> int:
    """Delete the events past their retention (their deliveries and attempts go with
    them); how many."""
    with engine.begin() as conn:
        return conn.execute(FORGET).rowcount
