"""When a message fails for good (retries exhausted, or an error listed in ``throws``)
Dramatiq moves it to the queue's dead-letter queue; this hook then tells the order,
which becomes ``needs_attention`` with the last error. Nothing is dropped silently."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from dramatiq import Broker
from dramatiq.middleware import Middleware

log = structlog.get_logger("workers.dead_letters")

#: Called with (message, last error) for each message that died.
OnDead = Callable[[object, str], None]


class DeadLetterHook(Middleware):
    def __init__(self, on_dead: OnDead | None = None) -> None:
        self.on_dead = on_dead

    def after_process_message(
        self, broker: Broker, message, *, result=None, exception=None
    ) -> None:
        if exception is None or not getattr(message, "failed", False):
            return
        error = f"{type(exception).__name__}: {exception}"
        log.error("message_dead_lettered", error=error, retries=message.options.get("retries", 0))
        if self.on_dead is not None:
            try:
                self.on_dead(message, error)
            except (
                Exception
            ):  # the message is already dead-lettered; the sweeper will see the order
                log.exception("dead_letter_hook_failed")

    def after_skip_message(self, broker: Broker, message) -> None:
        log.error("message_skipped", reason="age limit")
        if self.on_dead is not None:
            self.on_dead(message, "message expired before it could run (age limit)")
