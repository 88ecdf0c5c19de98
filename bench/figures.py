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
#: The cost issue's targets, every default feature on.
TARGET_BARE_MESSAGES, TARGET_COMMITS, TARGET_MESSAGES = 60, 8, 3
TARGET_RATIO, TARGET_API_RATIO, TARGET_API_P99 = 0.15, 0.25, 8
#: The actors of merchant webhook deliveries (counted apart from the order's messages):
#: a batch, and one delivery (an admin's redelivery).
DELIVERY_ACTORS = ("deliver_webhooks", "deliver_webhook")
#: Share of the sustained rate the steady load offers: near the limit, not over it.
STEADY_SHARE = 0.7
#: The confirmation e-mail's p99 a steady load must keep to count as held.
EMAIL_P99_SECONDS = 2.0
#: The steady-rate search: its first rate as a share of the burst's sustained rate, and
#: each next one this much higher, at most ``LADDER_STEPS`` of them.
LADDER_START, LADDER_FACTOR, LADDER_STEPS = 0.6, 1.15, 6


def median_round(rounds: list[dict]) -> dict:
    """Of the API's alternated rounds (each a system window and the bare window right
    after it, with their ``ratio``), the one whose ratio is the median: its own pair of
    figures, never a system window beside another round's bare one."""
    if not rounds:
        raise ValueError("no rounds")
    ordered = sorted(rounds, key=lambda one: one["ratio"])
    return ordered[(len(ordered) - 1) // 2]


def window_cpu(
    spent: Mapping[str, float], *, requests: int, seconds: float, machine_seconds: float
) -> dict:
    """Where one wrk window's time went: each process's CPU per request (µs), how busy
    each was (CPU seconds per second of the window: 1.0 is a core all the time), and how
    many of the machine's cores were busy. A process busy well under 1.0 while the
    machine has cores idle waits on something; one near 1.0 is the limit."""
    return {
        "us_per_request": {
            role: round(used * 1e6 / max(requests, 1)) for role, used in spent.items()
        },
        "busy": {role: round(used / seconds, 2) for role, used in spent.items()},
        "machine_busy_cores": round(machine_seconds / seconds, 2),
    }


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


def ladder(burst_per_second: float) -> list[float]:
    """The rates the steady-rate search offers, rising from a share of the burst rate."""
    return [round(burst_per_second * LADDER_START * LADDER_FACTOR**step, 1)
            for step in range(LADDER_STEPS)]  # fmt: skip


def held(steady: Mapping) -> bool:
    """A steady load the pipeline held: every order finished, and the confirmation
    e-mail's p99 within ``EMAIL_P99_SECONDS``."""
    p99 = steady["confirmation_email_seconds"]["p99"]
    return not steady["unfinished"] and p99 is not None and p99 <= EMAIL_P99_SECONDS


def highest_held(steps: list[Mapping]) -> float | None:
    """The highest offered rate of a steady-rate search that the pipeline held."""
    rates = [step["offered_per_second"] for step in steps if held(step)]
    return max(rates) if rates else None


def sustained_rate(*, orders: int, first_accepted: float, last_delivered: float,
                   transit_seconds: float) -> float:  # fmt: skip
    """Orders per second from the first acceptance to the last delivery, less the
    carrier's transit: the sandbox's tracker clock is the remote carrier's wall time,
    not the product's (it would otherwise lower the rate by a fixed number of seconds)."""
    return round(orders / max(last_delivered - first_accepted - transit_seconds, 1e-9), 2)


def delivery_attempts(run: Mapping) -> float:
    """Merchant webhook delivery attempts per order (one POST each)."""
    return run.get("merchant_deliveries_per_order", {}).get("attempts", 0.0)


def delivery_messages(run: Mapping) -> float:
    """Merchant webhook delivery messages per order: each is one batch of attempts,
    recorded in one commit."""
    by_actor = run.get("messages_by_actor_per_order", {})
    return round(sum(by_actor.get(actor, 0.0) for actor in DELIVERY_ACTORS), 2)


def commits_less_deliveries(run: Mapping) -> float:
    return round(run["commits_per_order"] - delivery_messages(run), 2)


def messages_less_deliveries(run: Mapping) -> float:
    return round(run["messages_per_order"] - delivery_messages(run), 2)


def targets(r: Mapping) -> list[tuple[str, object, bool | None]]:
    """(target, this run's figure, met) for each target of the cost issue, from the
    runs with every default feature on (one merchant endpoint subscribed)."""
    runs, bare, api = r.get("merchant") or [], r["bare_dramatiq"][-1], r["api"]
    if not runs:
        return []
    rows: list[tuple[str, object, bool | None]] = []
    main = runs[0]
    cost = in_bare_messages(main["product_cpu_ms_per_order"], bare["message_ms"])
    rows.append((f"CPU per order <= {TARGET_BARE_MESSAGES} bare messages", cost,
                 cost <= TARGET_BARE_MESSAGES))  # fmt: skip
    # the order's own commits and messages are the plain run's (no endpoint); what one
    # endpoint adds is stated beside them
    plain = r["pipeline"][-1]
    added = round(main["commits_per_order"] - plain["commits_per_order"], 2)
    rows.append((f"commits per order <= {TARGET_COMMITS}, deliveries apart (one endpoint adds "
                 f"{added}: {delivery_messages(main)} delivery batches for {delivery_attempts(main)} "
                 "attempts, and the scheduler's dispatch)", plain["commits_per_order"],
                 plain["commits_per_order"] <= TARGET_COMMITS))  # fmt: skip
    added = round(main["messages_per_order"] - plain["messages_per_order"], 2)
    rows.append((f"broker messages per order <= {TARGET_MESSAGES}, deliveries apart (one "
                 f"endpoint adds {added})", plain["messages_per_order"],
                 plain["messages_per_order"] <= TARGET_MESSAGES))  # fmt: skip
    for run in runs:
        rate = run["orders_per_second"]
        ratio = orders_ratio(rate, bare["messages_per_second"]) if rate else None
        rows.append((f"orders/s x 11 / bare messages/s >= {TARGET_RATIO}, tracker clock "
                     f"{run['tracker_step_seconds']} s", ratio,
                     None if ratio is None else ratio >= TARGET_RATIO))  # fmt: skip
    rows.append((f"POST /v1/orders >= {TARGET_API_RATIO} of bare aiohttp", api["ratio"],
                 api["ratio"] >= TARGET_API_RATIO))  # fmt: skip
    p99 = round(api["system"]["p99_ms"] / api["bare_aiohttp"]["p99_ms"], 1)
    rows.append((f"POST /v1/orders p99 <= {TARGET_API_P99} x bare p99", p99, p99 <= TARGET_API_P99))
    steady = r.get("steady_load") or []
    mail = steady[0]["confirmation_email_seconds"]["p99"] if steady else None
    rows.append((f"confirmation e-mail p99 <= {EMAIL_P99_SECONDS} s at {int(STEADY_SHARE * 100)} % "
                 "of the steady sustained rate", mail,
                 None if mail is None else mail <= EMAIL_P99_SECONDS))  # fmt: skip
    return rows
