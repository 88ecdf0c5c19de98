"""The pipeline runs of ``make bench``: what one order costs from acceptance to delivery,
and the confirmation e-mail's latency under a steady load near the sustained rate.

The measured window of a pipeline run opens once the customers are registered (their
password hashing is no order's cost) and closes when every order is delivered and the
workers have taken no message for two seconds (the last e-mails). CPU is counted over
that window; commits over the system's whole life, less the bench's own polls;
messages from the workers' counter; webhooks from the table, after the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import psycopg

from bench import cpu, figures, merchant_receiver, probes
from bench.processes import Processes, system
from cli.traffic import Simulation, SimulationConfig
from fulfillment.embedded import free_port
from fulfillment.merchant_events import new_secret
from sandbox.easypost.trackers import PROGRESSION

#: How long the wait for delivery may go without a single order finishing.
STALL_SECONDS = 60.0
#: Customers registered (and logged in) for each rate of a steady load.
STEADY_CUSTOMERS = 20


def run(env: dict[str, str], logs: Path, *, workers: int, orders: int, tracker_step: float,
        admin_url: str, database: str, server_roots: dict[str, int],
        quoted: bool = False, merchant: bool = False) -> dict:  # fmt: skip
    """Orders placed as fast as the API takes them, followed until delivered; ``quoted``:
    each on a checkout quote, asked for by a system of its own before this one starts
    (a quote is the storefront's browsing, not the order's cost: neither its CPU nor
    its commits, nor the scheduler's while it runs, are counted); ``merchant``: one
    webhook endpoint subscribed to every event, answered by a receiver of the
    merchant's (its CPU not counted), each order's deliveries counted apart."""
    quotes = _quotes(env, logs, orders=orders, tracker_step=tracker_step) if quoted else []
    with contextlib.ExitStack() as stack:
        if merchant:
            stack.enter_context(_merchant_endpoint(env, logs))
        commits_before = probes.settled_commits(admin_url, database)
        result = _run(env, logs, workers=workers, orders=orders, tracker_step=tracker_step,
                      admin_url=admin_url, database=database, server_roots=server_roots,
                      quotes=quotes, commits_before=commits_before)  # fmt: skip
    return {**result, "quoted": quoted, "merchant_endpoint": merchant}


@contextlib.contextmanager
def _merchant_endpoint(env: dict[str, str], logs: Path) -> Iterator[None]:
    """A merchant receiver running, and an endpoint subscribed to every event type
    pointing at it (written straight to the table, as the admin API would)."""
    port = free_port()
    procs = Processes(env, logs)
    try:
        procs.start("merchant", [sys.executable, "-m", "bench.merchant_receiver", str(port)])
        procs.wait_http(f"http://127.0.0.1:{port}/health")
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret)"
                " VALUES (gen_random_uuid(), %s, ARRAY['*'], %s)",
                (f"http://127.0.0.1:{port}{merchant_receiver.PATH}", new_secret()),
            )
        yield
    finally:
        procs.stop_all()


def _run(env: dict[str, str], logs: Path, *, workers: int, orders: int, tracker_step: float,
         admin_url: str, database: str, server_roots: dict[str, int], quotes: list,
         commits_before: int) -> dict:  # fmt: skip
    with system(env, logs, workers=workers, tracker_step=tracker_step) as (running, pids):
        roots = {**pids, **server_roots}
        metrics_url = f"http://127.0.0.1:{running['WORKER_METRICS_PORT']}/metrics"
        opened: dict = {}

        def open_window() -> None:
            opened.update(cpu=cpu.snapshot(roots), machine=cpu.machine_seconds(),
                          at=time.monotonic(), messages=probes.messages_processed(metrics_url),
                          by_actor=probes.messages_by_actor(metrics_url))  # fmt: skip

        config = SimulationConfig(api_url=f"http://127.0.0.1:{running['API_PORT']}",
                                  sandbox_url=None, orders=orders, concurrency=32,
                                  customers=10, decline_rate=0.0)  # fmt: skip
        sim = Simulation(config)
        sim.quotes = list(quotes)  # each order placed by its quote's customer
        accepted_per_second = asyncio.run(_place(sim, open_window))
        poll = probes.TerminalPoll(env["DATABASE_URL"])
        finished = _wait_finished(poll, len(sim.orders))
        poll.close()
        messages = _wait_quiet(metrics_url) - opened["messages"]
        by_actor = probes.messages_by_actor(metrics_url)
        by_actor = {actor: count - opened["by_actor"].get(actor, 0)
                    for actor, count in by_actor.items()}  # fmt: skip
        spent = cpu.spent(opened["cpu"], cpu.snapshot(roots))
        machine = cpu.machine_seconds() - opened["machine"]
        window = time.monotonic() - opened["at"]
    commits = probes.settled_commits(admin_url, database) - commits_before - poll.transactions
    placed = len(sim.orders)
    clock = probes.order_clock(env["DATABASE_URL"])
    cpu_ms = figures.per_order(spent, placed, scale=1000)
    deliveries = probes.merchant_deliveries(env["DATABASE_URL"])
    return {
        "workers": workers, "threads": 8, "orders": placed,
        "finished": finished,
        "delivered": clock["delivered"], "tracker_step_seconds": tracker_step,
        "accepted_per_second": accepted_per_second,
        **_throughput(clock, transit=(len(PROGRESSION) - 1) * tracker_step),
        "cpu_ms_per_order": cpu_ms, "product_cpu_ms_per_order": figures.product_total(cpu_ms),
        "commits_per_order": round(commits / placed, 2),
        "messages_per_order": round(messages / placed, 2),
        "messages_by_actor_per_order": figures.per_order(
            {actor: count for actor, count in by_actor.items() if count}, placed),
        # the merchant's webhooks: each delivery attempt is one message and one commit
        "merchant_deliveries_per_order": figures.per_order(deliveries, placed),
        "webhooks_per_order": figures.per_order(probes.webhooks_by_type(env["DATABASE_URL"]), placed),
        "window_seconds": round(window, 2),
        "cores_busy": round(sum(spent.values()) / window, 2),
        # the rest of the machine, the bench's own driver included: on a shared machine,
        # what competed with the run
        "other_cores_busy": round((machine - sum(spent.values())) / window, 2),
    }  # fmt: skip


def _quotes(env: dict[str, str], logs: Path, *, orders: int,
            tracker_step: float) -> list[tuple[dict, str]]:  # fmt: skip
    """A quote for each order to come, from a system started for them and stopped: the
    orders' bodies (quote and option named) and their customers' tokens."""
    with system(env, logs, workers=1, tracker_step=tracker_step) as (running, _):
        config = SimulationConfig(api_url=f"http://127.0.0.1:{running['API_PORT']}",
                                  sandbox_url=None, orders=orders, concurrency=32,
                                  customers=10, quoted=True)  # fmt: skip
        sim = Simulation(config)

        async def ask() -> None:
            async with aiohttp.ClientSession() as http:
                sim.http = http
                products = await sim._products()
                tokens = [await sim._customer() for _ in range(config.customers)]
                await sim.quote_all(products, tokens)

        asyncio.run(ask())
    if len(sim.quotes) != orders:
        raise RuntimeError(f"{len(sim.quotes)} quotes of {orders}: {dict(sim.errors)}")
    return sim.quotes


def _throughput(clock: dict, *, transit: float) -> dict:
    if not clock["delivered"]:
        return {"seconds": None, "transit_seconds": transit, "orders_per_second": None}
    return {
        "seconds": round(clock["last_delivered"] - clock["first_accepted"], 2),
        "transit_seconds": transit,
        "orders_per_second": figures.sustained_rate(
            orders=clock["delivered"], first_accepted=clock["first_accepted"],
            last_delivered=clock["last_delivered"], transit_seconds=transit,
        ),
    }  # fmt: skip


async def _place(sim: Simulation, open_window: Callable[[], None]) -> float:
    """Registers the customers, opens the window, then places every order; returns the
    accepted orders per second."""
    async with aiohttp.ClientSession() as http:
        sim.http = http
        products = await sim._products()
        tokens = [await sim._customer() for _ in range(sim.config.customers)]
        open_window()
        began = time.monotonic()
        await sim._place_all(products, tokens, _Silent(), 0)
        return round(len(sim.orders) / (time.monotonic() - began), 1)


class _Silent:
    def advance(self, *args: object) -> None: ...


def _wait_finished(poll: probes.TerminalPoll, orders: int) -> int:
    """Polls once a second until every order is terminal, or none has finished for
    ``STALL_SECONDS`` (a broken pipeline ends the run instead of hanging it)."""
    done, progressed = poll.count(), time.monotonic()
    while done < orders and time.monotonic() - progressed < STALL_SECONDS:
        time.sleep(1.0)
        now = poll.count()
        if now > done:
            done, progressed = now, time.monotonic()
    return done


def _wait_quiet(metrics_url: str, *, still: int = 2, limit: float = 30.0) -> float:
    """The workers' message count, once it has not moved for ``still`` seconds."""
    last, unchanged = probes.messages_processed(metrics_url), 0
    deadline = time.monotonic() + limit
    while unchanged < still and time.monotonic() < deadline:
        time.sleep(1.0)
        now = probes.messages_processed(metrics_url)
        unchanged, last = (unchanged + 1 if now == last else 0), now
    return last


def steady_load(env: dict[str, str], logs: Path, *, rate: float, seconds: int,
                tracker_step: float, merchant: bool = False) -> dict:  # fmt: skip
    """Orders offered at a steady rate; accepted -> confirmation e-mail latency."""
    return steady_ladder(env, logs, rates=[rate], seconds=seconds, tracker_step=tracker_step,
                         merchant=merchant)[0]  # fmt: skip


def steady_ladder(env: dict[str, str], logs: Path, *, rates: list[float], seconds: int,
                  tracker_step: float, merchant: bool = False) -> list[dict]:  # fmt: skip
    """Steady loads at rising ``rates`` on one running system (each drained before the
    next), until the confirmation e-mail's p99 goes over ``figures.EMAIL_P99_SECONDS``
    or an order is left unfinished: the last rate held is the highest steady rate."""
    steps: list[dict] = []
    with contextlib.ExitStack() as stack:
        if merchant:
            stack.enter_context(_merchant_endpoint(env, logs))
        running, _ = stack.enter_context(system(env, logs, workers=2, tracker_step=tracker_step))
        for rate in rates:
            steps.append(
                {**_steady(running, rate=rate, seconds=seconds), "merchant_endpoint": merchant}
            )
            if not figures.held(steps[-1]):
                break
    return steps


def _steady(running: dict[str, str], *, rate: float, seconds: int) -> dict:
    config = SimulationConfig(api_url=f"http://127.0.0.1:{running['API_PORT']}",
                              sandbox_url=f"http://127.0.0.1:{running['SANDBOX_PORT']}",
                              orders=round(rate * seconds), rate=rate, concurrency=64,
                              customers=STEADY_CUSTOMERS, decline_rate=0.0, timeout=600)  # fmt: skip
    result = asyncio.run(Simulation(config).run(progress=False))
    return {
        "offered_per_second": rate,
        "seconds": seconds,
        "orders": result["orders"],
        "accepted_per_second": result["accepted_per_second"],
        "accept_latency_seconds": result["accept_latency_seconds"],
        "confirmation_email_seconds": result["time_to_seconds"]["confirmation_email"],
        "delivered_seconds": result["time_to_seconds"]["delivered"],
        "unfinished": result["unfinished"],
    }
