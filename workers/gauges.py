"""Gauges the scheduler refreshes: queue depth, dead letters, outbox backlog and orders
per state (Dramatiq's own metrics cover what its workers do, not what waits)."""

from __future__ import annotations

import dramatiq
from sqlalchemy import Engine, func, select

from fulfillment.models import Order, OutboxMessage
from fulfillment.states import OrderStatus
from monitoring import metrics
from workers.queues import ALL


def queue_counts(broker: dramatiq.Broker, queue: str) -> tuple[int, int]:
    """(waiting, dead) for one queue; waiting counts ready and delayed messages."""
    if hasattr(broker, "client"):  # Redis
        ns, client = broker.namespace, broker.client
        waiting = client.hlen(f"{ns}:{queue}.msgs") + client.hlen(f"{ns}:{queue}.DQ.msgs")
        return waiting, client.zcard(f"{ns}:{queue}.XQ")
    ready, delayed, dead = broker.get_queue_message_counts(queue)
    return ready + delayed, dead


def refresh(engine: Engine, broker: dramatiq.Broker) -> None:
    for queue in ALL:
        waiting, dead = queue_counts(broker, queue)
        metrics.queue_depth.labels(queue).set(waiting)
        metrics.dead_letters.labels(queue).set(dead)
    with engine.connect() as conn:
        pending = conn.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None))
        )
        per_state = dict(
            conn.execute(select(Order.status, func.count()).group_by(Order.status)).all()
        )
    metrics.outbox_pending.set(pending or 0)
    for state in OrderStatus:
        metrics.orders_in_state.labels(state.value).set(per_state.get(state.value, 0))
