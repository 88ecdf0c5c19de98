"""``fulfillment_step_total`` and ``fulfillment_step_duration_seconds`` for every actor.

Outcomes: ``success`` (the step did its work or found it done), ``failed`` (the step ran
and took the business failure path, e.g. a declined card), ``retry`` (an error that
Dramatiq will retry) and ``dead`` (retries exhausted or not retryable: dead-lettered).
Actors say which pipeline they belong to with the ``pipeline`` option; a step reports
a business failure by returning ``"failed"`` (read through ``take_outcome``).
"""

from __future__ import annotations

import time

from dramatiq import Broker, Message
from dramatiq.middleware import Middleware

from monitoring import metrics
from pipelines.actors import take_outcome


class StepMetrics(Middleware):
    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @property
    def actor_options(self) -> set[str]:
        return {"pipeline"}

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
        if started is not None:
            metrics.step_duration_seconds.labels(pipeline, message.actor_name).observe(
                time.perf_counter() - started
            )

    def after_skip_message(self, broker: Broker, message) -> None:
        self._started.pop(message.message_id, None)
        pipeline = broker.get_actor(message.actor_name).options.get("pipeline", "other")
        metrics.step_total.labels(pipeline, message.actor_name, "dead").inc()
