"""``make bench``: what one order costs, beside the bare stack, measured in one run on
this machine; writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``.

Everything runs on the bench's own embedded PostgreSQL and Redis, started in a fresh
folder for the run (DATABASE_URL and REDIS_URL are not used), so that their CPU can be
counted by process id, apart from any other server on the machine. The measured
database is created afresh for each system run.

Settings: BENCH_ORDERS (orders per pipeline run, 400), BENCH_BARE_MESSAGES (no-op
messages, 20000), BENCH_API_ROUNDS (alternated API and bare aiohttp windows, 3),
BENCH_STEADY_SECONDS (30), BENCH_LADDER_SECONDS (each rate of the
steady-rate search, 20), BENCH_TRACKER_STEP_SECONDS (the sandbox
carrier's seconds per tracker status, 2), BENCH_NOTE (a label for the history row),
BENCH_DOCS (the report's folder, ``docs``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

import psycopg
import redis
from sqlalchemy.orm import Session

from bench import figures, measure, pipeline
from bench.report import write_report
from bench.servers import Servers, database_url, own_servers
from fulfillment import migrate
from fulfillment.db import create_sync_db_engine
from fulfillment.models import Inventory, Product
from fulfillment.settings import load_settings

DATABASE = "fulfillment_bench"
ROOT = Path(__file__).resolve().parents[1]
#: Where the report goes (BENCH_DOCS: elsewhere, for a trial run).
DOCS = Path(os.environ.get("BENCH_DOCS", ROOT / "docs"))
PIPELINE_ORDERS = int(os.environ.get("BENCH_ORDERS", "400"))
BARE_MESSAGES = int(os.environ.get("BENCH_BARE_MESSAGES", "20000"))
STEADY_SECONDS = int(os.environ.get("BENCH_STEADY_SECONDS", "30"))
#: Seconds between the sandbox carrier's tracker statuses: long enough that a tracker
#: webhook comes after the step it follows, short enough for a run of a few minutes.
TRACKER_STEP = float(os.environ.get("BENCH_TRACKER_STEP_SECONDS", "2"))
#: The bench API's throttles, far above what it asks (``system_env``).
BENCH_LIMIT = "1000000/second"
THROTTLES = ("ORDER_CUSTOMER_LIMIT", "QUOTE_CUSTOMER_LIMIT", "REGISTER_ADDRESS_LIMIT",
             "LOGIN_ADDRESS_LIMIT", "LOGIN_ACCOUNT_LIMIT")  # fmt: skip
#: The fast tracker clock: the carrier's statuses come almost at once, so tracker
#: webhooks land while the order's own steps still run (the throughput the pipeline
#: alone sets, and the races between them).
FAST_TRACKER_STEP = 0.05
#: Seconds of each rate of the steady-rate search.
LADDER_SECONDS = int(os.environ.get("BENCH_LADDER_SECONDS", "20"))
#: Worker processes of the pipeline runs; the last one sets the steady load's rate.
WORKER_PROCESSES = (1, 2)


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions(servers: Servers) -> dict:
    with psycopg.connect(servers.admin_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "postgresql": postgres,
        "redis": redis.Redis.from_url(servers.redis_url).info("server")["redis_version"],
        **{
            name: version(name)
            for name in ("aiohttp", "dramatiq", "sqlalchemy", "psycopg", "pydantic")
        },
    }


def revision() -> str:
    """The commit measured, marked when the work tree had changes on top of it (the
    reports under ``docs/`` aside: the previous run leaves them changed)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!docs"], capture_output=True, text=True)  # fmt: skip
    return head.stdout.strip() + (" + changes" if dirty.stdout.strip() else "")


def fresh_state(servers: Servers, bench_url: str) -> str:
    """An empty, migrated database with one product in stock, and an empty Redis: orders
    left from a previous run would be re-driven against a sandbox that never saw them.
    Returns the product's id."""
    with psycopg.connect(servers.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    migrate.upgrade(bench_url)
    redis.Redis.from_url(servers.redis_url).flushdb()
    engine = create_sync_db_engine(
        load_settings(database_url=bench_url, redis_url=servers.redis_url), pool_size=1
    )
    with Session(engine) as session, session.begin():
        product = Product(sku="BENCH-1", name="Benchmark mug", price=Decimal("12.50"),
                          currency="usd", category="bench", description="")  # fmt: skip
        session.add(product)
        session.flush()
        session.add(Inventory(product_id=product.id, on_hand=10_000_000))
        product_id = str(product.id)
    engine.dispose()
    return product_id


def system_env(bench_url: str, redis_url: str, logs: Path) -> dict[str, str]:
    """The environment of the systems the bench starts. A few customers place every
    order, all from one address, and the steady-rate search registers and logs in a
    new set of them at each rate: the throttles still count each request (their cost
    is measured) but must not refuse them."""
    return {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING", "VAR_DIR": str(logs / "var"),
            **{name: BENCH_LIMIT for name in THROTTLES}}  # fmt: skip


def run_all(servers: Servers, logs: Path) -> dict:
    bench_url = database_url(servers.admin_url, DATABASE)
    os.environ["REDIS_URL"] = servers.redis_url  # the bare Dramatiq module reads it
    os.environ.setdefault("FULFILLMENT_ENV", "development")  # the sandbox's built-in secrets
    env = system_env(bench_url, servers.redis_url, logs)
    results: dict = {"machine": machine(), "versions": versions(servers), "revision": revision(),
                     "note": os.environ.get("BENCH_NOTE", ""),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}  # fmt: skip
    _announce("API: POST /v1/orders vs bare aiohttp (wrk)")
    results["api"] = measure.api_vs_bare(
        env, logs, fresh_state(servers, bench_url), postgres_pid=servers.roots["postgresql"]
    )
    _announce("PostgreSQL ceiling: pgbench")
    results["pgbench"] = measure.pgbench(servers.admin_url)
    results["pipeline"], results["bare_dramatiq"] = [], []
    for workers in WORKER_PROCESSES:
        _announce(f"pipeline, {workers} worker process(es), {PIPELINE_ORDERS} orders")
        fresh_state(servers, bench_url)
        results["pipeline"].append(pipeline.run(
            env, logs, workers=workers, orders=PIPELINE_ORDERS, tracker_step=TRACKER_STEP,
            admin_url=servers.admin_url, database=DATABASE, server_roots=servers.roots))  # fmt: skip
        _announce(f"bare Dramatiq no-op actors, {workers} process(es)")
        results["bare_dramatiq"].append(measure.bare_dramatiq(
            env, logs, workers=workers, messages=BARE_MESSAGES, redis_pid=servers.roots["redis"]))  # fmt: skip
    two = WORKER_PROCESSES[-1]
    _announce(f"pipeline, {two} worker processes, {PIPELINE_ORDERS} orders placed on checkout "
              "quotes")  # fmt: skip
    fresh_state(servers, bench_url)
    results["quoted"] = pipeline.run(
        env, logs, workers=two, orders=PIPELINE_ORDERS, tracker_step=TRACKER_STEP,
        admin_url=servers.admin_url, database=DATABASE, server_roots=servers.roots, quoted=True)  # fmt: skip
    # every default feature on: one merchant endpoint subscribed, at both tracker clocks
    results["merchant"] = []
    for step in (TRACKER_STEP, FAST_TRACKER_STEP):
        _announce(f"pipeline, {two} worker processes, {PIPELINE_ORDERS} orders, one merchant "
                  f"endpoint subscribed, tracker clock {step} s")  # fmt: skip
        fresh_state(servers, bench_url)
        results["merchant"].append(pipeline.run(
            env, logs, workers=two, orders=PIPELINE_ORDERS, tracker_step=step,
            admin_url=servers.admin_url, database=DATABASE, server_roots=servers.roots,
            merchant=True))  # fmt: skip
    results["steady_ladder"], results["steady_load"] = [], []
    burst = results["pipeline"][-1]["orders_per_second"]
    if burst:
        rates = figures.ladder(burst)
        _announce(f"steady-rate search: {', '.join(map(str, rates))} orders/s offered for "
                  f"{LADDER_SECONDS} s each, until the e-mail p99 passes "
                  f"{figures.EMAIL_P99_SECONDS} s")  # fmt: skip
        fresh_state(servers, bench_url)
        results["steady_ladder"] = pipeline.steady_ladder(
            env, logs, rates=rates, seconds=LADDER_SECONDS, tracker_step=TRACKER_STEP,
            merchant=True)  # fmt: skip
        rate = figures.steady_rate(figures.highest_held(results["steady_ladder"]) or rates[0])
        _announce(f"steady load: {rate} orders/s offered for {STEADY_SECONDS} s")
        fresh_state(servers, bench_url)
        results["steady_load"].append(pipeline.steady_load(
            env, logs, rate=rate, seconds=STEADY_SECONDS, tracker_step=TRACKER_STEP,
            merchant=True))  # fmt: skip
    return results


def main() -> None:
    logs = Path(tempfile.mkdtemp(prefix="fulfillment-bench-"))
    with own_servers(logs / "servers") as servers:
        results = run_all(servers, logs)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, DOCS / "benchmarks.md")
    print(f"wrote {DOCS / 'benchmarks.md'} (process logs in {logs})", file=sys.stderr)


def _announce(text: str) -> None:
    print(f"== {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
