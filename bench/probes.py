"""Reading what the system did from its own counters: PostgreSQL's statistics, the
workers' Prometheus metrics and the tables, without adding to what is measured."""

from __future__ import annotations

import time

import psycopg
import requests

from fulfillment.states import TERMINAL

#: Dramatiq's own counter of the messages its workers processed, every actor and queue,
#: retries included (the saga's actor names change; this count does not care).
MESSAGES = "dramatiq_messages_total"


def sum_samples(exposition: str, name: str) -> float:
    """The sum of every sample of ``name`` in a Prometheus text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith((f"{name}{{", f"{name} ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def messages_processed(metrics_url: str) -> float:
    return sum_samples(requests.get(metrics_url, timeout=10).text, MESSAGES)


def actor_counts(exposition: str, name: str) -> dict[str, float]:
    """The samples of ``name`` summed by their ``actor_name`` label."""
    counts: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith(f"{name}{{") and 'actor_name="' in line:
            actor = line.split('actor_name="', 1)[1].split('"', 1)[0]
            counts[actor] = counts.get(actor, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def messages_by_actor(metrics_url: str) -> dict[str, float]:
    return actor_counts(requests.get(metrics_url, timeout=10).text, MESSAGES)


def settled_commits(admin_url: str, database: str, *, timeout: float = 60.0) -> int:
    """``xact_commit`` of ``database`` once no backend is connected to it: a backend
    reports its counts at most once a second while busy and may hold them for 10 s when
    idle, but always reports them when it exits. Read from the ``postgres`` database, so
    the reading adds no transaction to ``database``."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (database,)).fetchone()[0]:  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"backends of {database} still connected after {timeout} s")
            time.sleep(0.2)
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()[0]


class TerminalPoll:
    """Counts the orders that reached a terminal status, on one autocommit connection
    to the measured database. Each poll is one transaction of that database, so the
    polls are counted and subtracted from its commits; one poll a second on a few
    hundred rows is also too little to show in PostgreSQL's CPU."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(database_url, autocommit=True)
        self.transactions = 0

    def count(self) -> int:
        self.transactions += 1
        return self._conn.execute(
            "SELECT count(*) FROM orders WHERE status = ANY(%s)", ([str(s) for s in TERMINAL],)
        ).fetchone()[0]

    def close(self) -> None:
        self._conn.close()


def webhooks_by_type(database_url: str) -> dict[str, int]:
    """Webhooks the API stored, by ``provider event_type`` (read after the run)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT provider, event_type, count(*) FROM webhook_events GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    return {f"{provider} {event_type}": count for provider, event_type, count in rows}


def order_clock(database_url: str) -> dict[str, float | int | None]:
    """When the first order was accepted and the last one delivered (epoch seconds, the
    database's clock), and how many were delivered (read after the run)."""
    with psycopg.connect(database_url) as conn:
        first = conn.execute("SELECT extract(epoch FROM min(created_at)) FROM orders").fetchone()
        last = conn.execute(
            "SELECT extract(epoch FROM max(created_at)), count(DISTINCT order_id)"
            " FROM order_events WHERE to_status = 'delivered'"
        ).fetchone()
    return {
        "first_accepted": float(first[0]) if first[0] is not None else None,
        "last_delivered": float(last[0]) if last[0] is not None else None,
        "delivered": last[1],
    }


def merchant_deliveries(database_url: str) -> dict[str, int]:
    """The merchant webhook deliveries of the run by status, and the attempts at them
    (each attempt is one message and one commit of the delivery step)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1").fetchall()
        attempts = conn.execute("SELECT count(*) FROM webhook_attempts").fetchone()[0]
    return {**{f"deliveries {status}": count for status, count in rows}, "attempts": attempts}
