"""The bare-stack baseline for the workers: no-op Dramatiq actors on the same Redis,
run by the same dramatiq CLI with the same process and thread counts."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

#: Redis namespace of the baseline, apart from the system's.
NAMESPACE = "bench-bare"

broker = RedisBroker(url=os.environ["REDIS_URL"], namespace=NAMESPACE)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bare", max_retries=0)
def noop(order_id: str) -> None:
    """Does nothing: what is measured is the broker and the worker machinery."""
