"""``fulfillment_step_total`` and ``fulfillment_step_duration_seconds`` for every actor.

Outcomes: ``success`` (the step did its work or found it done), ``failed`` (the step ran
and took the business failure path, e.g. a declined card), ``retry`` (an error that
Dramatiq will retry) and ``dead`` (retries exhausted or not retryable: dead-lettered).
Actors say which pipeline they belong to with the ``pipeline`` option; a step reports
a business failure by returning ``"failed"`` (read through ``take_outcome``). Each run
also gets one ``step_finished`` log line with the same outcome and its duration.
"""

from __future__ import annotations

import logging
import time

import structlog
from dramatiq import Broker, Message
from dramatiq.middleware import Middleware

from monitoring import metrics
from pipelines.outcome import take_outcome

log = structlog.get_logger("workers.steps")

#: How loudly each outcome is logged.
LEVELS = {"success": logging.INFO, "failed": logging.INFO, "retry": logging.WARNING,
          "dead": logging.ERROR}  # fmt: skip


class StepMetrics(Middleware):
    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @property
    def actor_options(self) -> set[str]:
        return {"pipeline"}

    def after_process_boot(self, broker: Broker) -> None:
        metrics.initialise_step_series(
            (actor.options.get("pipeline", "other"), name) for name, actor in broker.actors.items()
        )
        metrics.initialise_label_void_series()

    def before_process_message(self, broker: Broker, message: Message) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self, broker: Broker, message, *, result=None, exception=None
    ) -> None:
        started = self._started.pop(message.message_id, None)
        pipeline = broker.get_actor(message.actor_name).options.get("pipeline", "other")
        if exception is None:
            outcome = "failed" if take_outcome() == "failed" else "success"
        else:
            outcome = "dead" if getattr(message, "failed", False) else "retry"
        metrics.step_total.labels(pipeline, message.actor_name, outcome).inc()
        duration = time.perf_counter() - started if started is not None else None
        if duration is not None:
            metrics.step_duration_seconds.labels(pipeline, message.actor_name).observe(duration)
        error = f"{type(exception).__name__}: {exception}" if exception is not None else None
        log.log(
            LEVELS[outcome], "step_finished", pipeline=pipeline, outcome=outcome,
            duration_ms=round(duration * 1000, 2) if duration is not None else None,
            **({"error": error} if error else {}),
        )  # fmt: skip

    def after_skip_message(self, broker: Broker, message) -> None:
        self._started.pop(message.message_id, None)
        pipeline = broker.get_actor(message.actor_name).options.get("pipeline", "other")
        metrics.step_total.labels(pipeline, message.actor_name, "dead").inc()
