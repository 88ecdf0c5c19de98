"""Gauges the scheduler refreshes: what waits, which Dramatiq's own metrics (about what
its workers did) cannot say. Queue depth (ready and delayed), dead letters, the outbox
backlog, orders per state, how long the oldest live order has waited, the worker
heartbeats Redis has seen, and the provider events stored but not applied."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import dramatiq
from dramatiq.common import dq_name
from sqlalchemy import Connection, Engine, func, select, text

from fulfillment.models import WEBHOOK_UNAPPLIED_AFTER, Order, OutboxMessage, WebhookEvent
from fulfillment.states import TERMINAL, OrderStatus
from monitoring import metrics
from workers.queues import ALL

#: How long a stored provider event may wait for its application.
UNAPPLIED_AFTER = WEBHOOK_UNAPPLIED_AFTER
#: Live statuses: an order in one of them still has work ahead of it.
LIVE = tuple(state for state in OrderStatus if state not in TERMINAL)


def queue_counts(broker: dramatiq.Broker, queue: str) -> tuple[int, int, int]:
    """(ready, delayed, dead) for one queue. Ready counts messages not yet acknowledged
    (waiting, prefetched or running); delayed ones wait out a retry backoff or an eta."""
    if hasattr(broker, "client"):  # Redis
        ns, client = broker.namespace, broker.client
        ready = client.hlen(f"{ns}:{queue}.msgs")
        delayed = client.hlen(f"{ns}:{dq_name(queue)}.msgs")
        return ready, delayed, client.zcard(f"{ns}:{queue}.XQ")
    ready, delayed, dead = broker.get_queue_message_counts(queue)
    return ready, delayed, dead


def live_workers(broker: dramatiq.Broker) -> int | None:
    """Broker processes whose heartbeat is fresh (Redis only; None otherwise). Dramatiq
    stamps ``<ns>:__heartbeats__`` on every broker call, workers' fetches included."""
    if not hasattr(broker, "client"):
        return None
    now_ms = int(time.time() * 1000)
    key = f"{broker.namespace}:__heartbeats__"
    return broker.client.zcount(key, now_ms - broker.heartbeat_timeout, "+inf")


def refresh_queues(broker: dramatiq.Broker) -> None:
    for queue in ALL:
        ready, delayed, dead = queue_counts(broker, queue)
        metrics.queue_depth.labels(queue).set(ready)
        metrics.queue_depth.labels(dq_name(queue)).set(delayed)
        metrics.dead_letters.labels(queue).set(dead)
    workers = live_workers(broker)
    if workers is not None:
        metrics.worker_heartbeats.set(workers)


def refresh_orders(conn: Connection) -> None:
    per_state = dict(conn.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    for state in OrderStatus:
        metrics.orders_in_state.labels(state.value).set(per_state.get(state.value, 0))
    now: datetime = conn.scalar(select(func.now()))
    oldest = dict(
        conn.execute(
            select(Order.status, func.min(Order.status_changed_at))
            .where(Order.status.in_([state.value for state in LIVE]))
            .group_by(Order.status)
        ).all()
    )
    for state in LIVE:
        since = oldest.get(state.value)
        age = max(0.0, (now - since).total_seconds()) if since is not None else 0.0
        metrics.oldest_order_age_seconds.labels(state.value).set(age)


def refresh_unapplied_events(conn: Connection) -> None:
    """Stored provider events still unapplied past ``UNAPPLIED_AFTER``, per provider
    (read through the partial index of unprocessed events)."""
    counted = dict(conn.execute(
        select(WebhookEvent.provider, func.count())
        .where(WebhookEvent.processed_at.is_(None),
               WebhookEvent.received_at < func.now() - UNAPPLIED_AFTER)
        .group_by(WebhookEvent.provider)
    ).all())  # fmt: skip
    for provider in metrics.EVENT_PROVIDERS:
        metrics.provider_events_unapplied.labels(provider).set(counted.get(provider, 0))


#: Uncaptured authorizations lapsing within the margin, on orders still going on.
EXPIRING = text("""
    SELECT count(*) FROM orders
    WHERE capture_method = 'manual' AND amount_captured = 0 AND capture_before IS NOT NULL
      AND capture_before < now() + make_interval(secs => :margin)
      AND payment_status = 'authorized' AND status <> ALL(:ended)
""")


def refresh(
    engine: Engine, broker: dramatiq.Broker, *, margin: timedelta = timedelta(days=2)
) -> None:
    refresh_queues(broker)
    with engine.connect() as conn:
        pending = conn.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None))
        )
        metrics.outbox_pending.set(pending or 0)
        refresh_orders(conn)
        ended = [state.value for state in TERMINAL]
        expiring = conn.scalar(EXPIRING, {"margin": margin.total_seconds(), "ended": ended})
        metrics.authorizations_expiring.set(expiring or 0)
        refresh_unapplied_events(conn)
