"""The scheduler's part in merchant webhooks: send the deliveries whose time has come.

The orders trigger writes each delivery due at once; a retry (and a delivery whose
message was lost, once its lease ran out) is due at ``next_attempt_at``. Each pass, every
``WEBHOOK_SWEEP_SECONDS``, claims the due rows (``SKIP LOCKED``, so several schedulers
share the work), pushes their ``next_attempt_at`` on by a lease and writes one outbox row
per endpoint and ``PER_MESSAGE`` deliveries (``deliver_webhooks``, an order's events in
sequence), in one statement; the relay sends them on. One message and one commit then
carry a second's worth of an endpoint's events, instead of one each. Events are kept
``EVENT_RETENTION_DAYS`` (redelivery by time range reaches that far back, as Stripe's
event log does), then deleted with their deliveries and attempts once none of them is
still pending.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from fulfillment.merchant_events import DISPATCH_LEASE_SECONDS
from fulfillment.messages import DELIVER_WEBHOOKS

#: Deliveries claimed per pass.
BATCH_SIZE = 500
#: Deliveries per message at most: a batch to an endpoint that answers each just inside
#: the timeout (10 s by default) still ends well inside the lease.
PER_MESSAGE = 20
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
        FROM due WHERE d.id = due.id RETURNING d.id, d.endpoint_id, d.event_id),
    ranked AS (
        SELECT c.id, c.endpoint_id, e.created_at, e.order_id, e.sequence,
               (row_number() OVER (PARTITION BY c.endpoint_id
                                   ORDER BY e.created_at, e.order_id, e.sequence) - 1)
               / {PER_MESSAGE} AS chunk
        FROM claimed c JOIN merchant_events e ON e.id = c.event_id),
    sent AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs)
        SELECT '{DELIVER_WEBHOOKS[1]}', '{DELIVER_WEBHOOKS[0]}',
               jsonb_build_object('delivery_ids', jsonb_agg(id::text
                                  ORDER BY created_at, order_id, sequence))
        FROM ranked GROUP BY endpoint_id, chunk
        RETURNING jsonb_array_length(kwargs->'delivery_ids') AS deliveries)
    SELECT CAST(coalesce(sum(deliveries), 0) AS integer) FROM sent
""")


def dispatch_due(engine: Engine) -> int:
    """Queue every due delivery; how many went out."""
    sent = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(DISPATCH).scalar_one()
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
