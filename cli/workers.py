"""``fulfillment worker`` (the dramatiq CLI underneath) and ``fulfillment scheduler``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from cli.context import backends, init_logging
from fulfillment.settings import Settings
from monitoring.metrics import WORKER_METRICS_DIR
from workers.queues import ALL

#: Pause before starting Dramatiq again after it stopped on its own.
RESTART_DELAY_SECONDS = 1.0


#: The sub-folder of ``PROMETHEUS_MULTIPROC_DIR`` the workers own.
WORKER_METRICS_FOLDER = "worker"


def metrics_env(settings: Settings) -> dict[str, str]:
    """prometheus-client's multiprocess folder and Dramatiq's ``dramatiq_prom_db`` must
    be one folder, emptied before the workers start (Dramatiq's documented caveat). It
    is a sub-folder of its own under ``PROMETHEUS_MULTIPROC_DIR``, so emptying it never
    touches another process's files, and it is named to the workers alone
    (``monitoring.metrics.WORKER_METRICS_DIR``): the API and the scheduler keep their
    metrics in memory even where the variable is set for every process."""
    base = settings.prometheus_multiproc_dir or settings.var_dir / "prometheus-worker"
    folder = (Path(base) / WORKER_METRICS_FOLDER).resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "prometheus_multiproc_dir": str(folder),
        WORKER_METRICS_DIR: str(folder),
        "dramatiq_prom_db": str(folder),
        "dramatiq_prom_host": settings.api_host,
        "dramatiq_prom_port": str(settings.worker_metrics_port),
    }


@click.command()
@click.option("-p", "--processes", type=int, default=None, help="default: WORKER_PROCESSES (2)")
@click.option("-t", "--threads", type=int, default=None, help="default: WORKER_THREADS (8)")
@click.option("-Q", "--queues", multiple=True, type=click.Choice(ALL), help="default: all")
def worker(processes: int | None, threads: int | None, queues: tuple[str, ...]) -> None:
    """Run Dramatiq worker processes (metrics on WORKER_METRICS_PORT, 9191)."""
    with backends() as settings:
        argv = [
            sys.executable, "-m", "dramatiq", "workers.boot:broker",
            "--processes", str(processes or settings.worker_processes),
            "--threads", str(threads or settings.worker_threads),
            "--skip-logging", "--worker-shutdown-timeout", "30000",
        ]  # fmt: skip
        if queues:
            argv += ["--queues", *queues]
        env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
        code = supervise(argv, env=env, settings=settings)
    sys.exit(code)


def supervise(argv: list[str], *, env: dict[str, str], settings: Settings) -> int:
    """Run the dramatiq CLI; when it stops on its own (a worker process died, and
    Dramatiq then stops the rest), start it again. A signal stops it for good."""
    stopping = False
    process: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if process is not None and process.poll() is None:
            process.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    while True:
        process = subprocess.Popen(argv, env={**env, **metrics_env(settings)})
        code = process.wait()
        if stopping:
            return code
        click.echo(f"fulfillment worker: dramatiq exited with {code}; restarting", err=True)
        time.sleep(RESTART_DELAY_SECONDS)


@click.command()
def scheduler() -> None:
    """Outbox relay and periodic jobs (metrics on SCHEDULER_METRICS_PORT, 9192)."""
    from workers.scheduler import run as run_scheduler

    with backends() as settings:
        init_logging(settings)
        run_scheduler(settings)
