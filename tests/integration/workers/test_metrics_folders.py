"""Each process's metrics stay its own when ``PROMETHEUS_MULTIPROC_DIR`` is set for
every process (a shared env file, a compose ``environment:`` anchor): a worker's start
empties only the workers' folder, the API and the scheduler keep serving their own
series from memory, and neither writes into the workers' folder (whose exporter would
then serve their series twice). Real processes, running the real modules: the API's
``/metrics`` handler, the scheduler's default registry, ``fulfillment worker``'s
``metrics_env`` and the workers' multiprocess exposition."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from cli.workers import metrics_env

#: A long-running process: counts, says ready, and prints its exposition when asked.
SERVING = textwrap.dedent("""
    import asyncio, sys
    from monitoring import metrics
    {count}
    print("ready", flush=True)
    sys.stdin.readline()
    {expose}
    sys.stdout.write(body.decode())
""")
API = SERVING.format(
    count='metrics.http_requests_total.labels("GET", "/v1/products", "200").inc(7)',
    expose="from api.shared.health import metrics_endpoint\n"
    "body = asyncio.run(metrics_endpoint(None)).body",
)
SCHEDULER = SERVING.format(
    count="metrics.outbox_pending.set(5)",
    expose="from prometheus_client import REGISTRY, generate_latest\n"
    "body = generate_latest(REGISTRY)",
)
#: A Dramatiq worker process: our step metrics and one of Dramatiq's own.
WORKER = textwrap.dedent("""
    from prometheus_client import Counter
    from monitoring import metrics
    metrics.step_total.labels("saga", "ship_order", "success").inc(3)
    Counter("dramatiq_messages", "Dramatiq's own", ["queue_name"]).labels("orders").inc()
""")


def start(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert process.stdout.readline().strip() == "ready"
    return process


def scrape(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate("scrape\n", timeout=60)
    assert process.returncode == 0
    return out


def workers_exposition(folder: str) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return generate_latest(registry).decode()


def test_a_worker_start_leaves_the_api_and_scheduler_metrics_their_own(settings, tmp_path: Path):
    # Given every process started with one PROMETHEUS_MULTIPROC_DIR, the API and the
    # scheduler running and counting
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    api, scheduler = start(API, env), start(SCHEDULER, env)

    # When a worker starts (``fulfillment worker`` prepares its folder) and counts
    worker_env = {**env, **metrics_env(settings.model_copy(
        update={"prometheus_multiproc_dir": shared}))}  # fmt: skip
    subprocess.run([sys.executable, "-c", WORKER], env=worker_env, check=True, timeout=60)

    # Then the API still serves its own series, and only its own
    served = scrape(api)
    assert (
        'fulfillment_http_requests_total{method="GET",route="/v1/products",status="200"} 7.0'
        in served
    )
    assert "dramatiq_" not in served and "fulfillment_step_total{" not in served
    # and so does the scheduler
    served = scrape(scheduler)
    assert "fulfillment_outbox_pending 5.0" in served
    assert "dramatiq_" not in served
    # and the workers' exporter serves the workers' series, none of the others'
    workers = workers_exposition(worker_env["dramatiq_prom_db"])
    assert (
        'fulfillment_step_total{outcome="success",pipeline="saga",step="ship_order"} 3.0' in workers
    )
    assert "dramatiq_messages_total" in workers
    assert "fulfillment_http_requests_total{" not in workers
    assert "fulfillment_outbox_pending 5.0" not in workers
