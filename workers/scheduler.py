"""``fulfillment scheduler``: the outbox relay, and the periodic jobs (stalled-order
sweep, reservation expiry, re-drives, gauges, clean-up), with metrics on its own port."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from prometheus_client import start_http_server

from fulfillment.db import create_sync_db_engine
from fulfillment.settings import Settings
from monitoring import metrics
from workers import gauges, sweeper, webhook_dispatch
from workers.broker import create_broker
from workers.relay import OutboxRelay, listen_and_relay

log = structlog.get_logger("workers.scheduler")

#: Seconds between runs of each periodic job.
GAUGE_SECONDS = 5.0
CLEANUP_SECONDS = 3600.0


def every(
    seconds: float, job: Callable[[], object], *, name: str, stop: threading.Event
) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            try:
                result = job()
                if result:
                    log.info("job_done", job=name, result=result)
            except Exception as exc:
                log.warning("job_failed", job=name, error=f"{type(exc).__name__}: {exc}")
            stop.wait(seconds)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def start(settings: Settings, stop: threading.Event) -> list[threading.Thread]:
    engine = create_sync_db_engine(settings, pool_size=4)
    broker = create_broker(settings)
    stall = timedelta(seconds=settings.stall_after_seconds)
    margin = timedelta(seconds=settings.authorization_expiry_margin_seconds)
    sweep_every = max(1.0, min(settings.stall_after_seconds / 4, 30.0))
    relay = OutboxRelay(engine, broker)
    relay_thread = threading.Thread(
        target=listen_and_relay, name="outbox-relay", daemon=True,
        kwargs={"relay": relay, "libpq_url": settings.libpq_url,
                "sweep_seconds": settings.outbox_sweep_seconds, "stop": stop},
    )  # fmt: skip
    relay_thread.start()
    return [
        relay_thread,
        every(sweep_every, lambda: {k: v for k, v in sweeper.sweep(engine, stall=stall, margin=margin).items()
                                     if v},
              name="sweeper", stop=stop),
        every(GAUGE_SECONDS, lambda: gauges.refresh(engine, broker, margin=margin), name="gauges", stop=stop),
        every(CLEANUP_SECONDS, lambda: sweeper.clean_up(engine), name="cleanup", stop=stop),
        every(settings.webhook_sweep_seconds, lambda: webhook_dispatch.dispatch_due(engine),
              name="webhook-dispatch", stop=stop),
        every(CLEANUP_SECONDS, lambda: webhook_dispatch.clean_up(engine), name="webhook-cleanup",
              stop=stop),
    ]  # fmt: skip


def run(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    metrics.initialise_rescue_series()
    start_http_server(settings.scheduler_metrics_port, addr=settings.api_host)
    threads = start(settings, stop)
    log.info("scheduler_started", metrics_port=settings.scheduler_metrics_port)
    while not stop.is_set():
        time.sleep(0.2)
    for thread in threads:
        thread.join(timeout=5)
    log.info("scheduler_stopped")
