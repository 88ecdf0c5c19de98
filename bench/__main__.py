"""``make bench``: measures the system beside the bare stack on this machine, in one run,
and writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``.

Uses the PostgreSQL and Redis of DATABASE_URL / REDIS_URL, or embedded ones under
``var/bench`` when unset. The measured database is created afresh for the run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

import psycopg
import redis
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from bench import measure
from bench.report import write_report
from cli.context import backends
from fulfillment import migrate
from fulfillment.db import create_sync_db_engine
from fulfillment.models import Inventory, Product
from fulfillment.settings import load_settings

DATABASE = "fulfillment_bench"
DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Orders per pipeline run, and no-op messages for the bare Dramatiq baseline.
PIPELINE_ORDERS = int(os.environ.get("BENCH_ORDERS", "400"))
BARE_MESSAGES = int(os.environ.get("BENCH_BARE_MESSAGES", "20000"))
#: How long each steady load is offered: the issue's 50 orders/s, and a rate the
#: pipeline sustains on a 2-core machine, where the e-mail latency is the work of one
#: order rather than a queue.
STEADY_SECONDS = int(os.environ.get("BENCH_STEADY_SECONDS", "20"))
STEADY_RATES = (50, 10)


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions(admin_url: str, redis_url: str) -> dict:
    with psycopg.connect(admin_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "postgresql": postgres,
        "redis": redis.Redis.from_url(redis_url).info("server")["redis_version"],
        **{
            name: version(name)
            for name in ("aiohttp", "dramatiq", "sqlalchemy", "psycopg", "pydantic")
        },
    }


def fresh_database(server_url: str) -> tuple[str, str]:
    url = make_url(server_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    database_url = url.set(database=DATABASE).render_as_string(hide_password=False)
    migrate.upgrade(database_url)
    return admin, database_url


def add_stock(database_url: str, redis_url: str) -> str:
    engine = create_sync_db_engine(
        load_settings(database_url=database_url, redis_url=redis_url), pool_size=1
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


def fresh_state(ready, env: dict[str, str]) -> None:
    """Each system run starts from an empty database and Redis: orders left from the
    previous run would otherwise be re-driven against a sandbox that never saw them."""
    _, database_url = fresh_database(ready.database_url)
    redis.Redis.from_url(ready.redis_url).flushdb()
    add_stock(database_url, ready.redis_url)


def main() -> None:
    settings = load_settings(var_dir=Path("var/bench"), log_level="WARNING")
    logs = Path(tempfile.mkdtemp(prefix="fulfillment-bench-"))
    with backends(settings) as ready:
        admin_url, database_url = fresh_database(ready.database_url)
        redis.Redis.from_url(ready.redis_url).flushdb()
        os.environ["REDIS_URL"] = ready.redis_url  # the bare Dramatiq module reads it
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": ready.redis_url,
               "LOG_LEVEL": "WARNING", "VAR_DIR": str(logs / "var")}  # fmt: skip
        product_id = add_stock(database_url, ready.redis_url)
        results: dict = {"machine": machine(), "versions": versions(admin_url, ready.redis_url),
                         "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}  # fmt: skip
        step = _announce
        step("API: POST /v1/orders vs bare aiohttp (wrk)")
        results["api"] = measure.api_vs_bare(env, logs, product_id)
        step("PostgreSQL ceiling: pgbench")
        results["pgbench"] = measure.pgbench(admin_url)
        results["pipeline"], results["bare_dramatiq"] = [], []
        for workers in (1, 2):
            step(f"pipeline with {workers} worker process(es), {PIPELINE_ORDERS} orders")
            fresh_state(ready, env)
            results["pipeline"].append(measure.pipeline(env, logs, workers=workers, orders=PIPELINE_ORDERS,
                                                        admin_url=admin_url, database=DATABASE))  # fmt: skip
            step(f"bare Dramatiq no-op actors, {workers} process(es)")
            results["bare_dramatiq"].append(measure.bare_dramatiq(env, logs, workers=workers,
                                                                  messages=BARE_MESSAGES))  # fmt: skip
        results["steady_load"] = []
        for rate in STEADY_RATES:
            step(f"steady load: {rate} orders/s offered for {STEADY_SECONDS} s")
            fresh_state(ready, env)
            results["steady_load"].append(
                measure.steady_load(env, logs, rate=rate, seconds=STEADY_SECONDS)
            )
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, DOCS / "benchmarks.md")
    print(f"wrote {DOCS / 'benchmarks.md'} (process logs in {logs})", file=sys.stderr)


def _announce(text: str) -> None:
    print(f"== {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
