"""The arithmetic of "what one order costs", kept apart from the measuring so that it
can be checked on its own: per-order shares, the product's total, the same total in
bare Dramatiq messages, and the issue's orders/s ratio."""

from __future__ import annotations

from collections.abc import Mapping

#: The processes that make up the product. The sandbox stands in for the remote
#: providers and is reported beside them, outside the total.
PRODUCT = ("api", "worker", "scheduler", "postgresql", "redis")
#: Messages per order the issue counts when it compares orders/s with no-op messages/s.
ISSUE_MESSAGES_PER_ORDER = 11
#: Share of the sustained rate the steady load offers: near the limit, not over it.
STEADY_SHARE = 0.7


def per_order(totals: Mapping[str, float], orders: int, *, scale: float = 1.0) -> dict[str, float]:
    """Each total divided by the orders (times ``scale``, 1000 for seconds -> ms)."""
    return {key: round(value * scale / orders, 2) for key, value in totals.items()}


def product_total(cpu_ms: Mapping[str, float]) -> float:
    return round(sum(cpu_ms.get(role, 0.0) for role in PRODUCT), 2)


def bare_message_ms(*, worker_seconds: float, worker_messages: int,
                    redis_seconds: float, redis_messages: int) -> float:  # fmt: skip
    """CPU of one no-op message: the bare workers' share plus the Redis server's, each
    over the window it was measured in."""
    return round(worker_seconds * 1000 / worker_messages + redis_seconds * 1000 / redis_messages, 4)


def in_bare_messages(order_ms: float, message_ms: float) -> float:
    """How many bare no-op messages cost as much CPU as one order."""
    return round(order_ms / message_ms, 1)


def orders_ratio(orders_per_second: float, bare_messages_per_second: float) -> float:
    """The issue's yardstick: end-to-end orders/s x 11 messages / bare no-op messages/s
    (1.0 would mean an order costs no more than its messages on a bare Dramatiq)."""
    return round(orders_per_second * ISSUE_MESSAGES_PER_ORDER / bare_messages_per_second, 3)


def steady_rate(sustained_per_second: float) -> float:
    return round(sustained_per_second * STEADY_SHARE, 1)


def sustained_rate(*, orders: int, first_accepted: float, last_delivered: float,
                   transit_seconds: float) -> float:  # fmt: skip
    """Orders per second from the first acceptance to the last delivery, less the
    carrier's transit: the sandbox's tracker clock is the remote carrier's wall time,
    not the product's (it would otherwise lower the rate by a fixed number of seconds)."""
    return round(orders / max(last_delivered - first_accepted - transit_seconds, 1e-9), 2)
