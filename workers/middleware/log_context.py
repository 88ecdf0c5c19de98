"""Binds the message's context to every log line of a step: ``message_id``, ``step``
(the actor), ``queue``, ``attempt``, the ids the message carries (``order_id``,
``notification_id``, ...) and ``request_id`` when an API request started the chain."""

from __future__ import annotations

import structlog
from dramatiq import Broker, Message
from dramatiq.middleware import Middleware


class LogContext(Middleware):
    def before_process_message(self, broker: Broker, message: Message) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id,
            step=message.actor_name,
            queue=message.queue_name,
            attempt=message.options.get("retries", 0) + 1,
            **{k: v for k, v in message.kwargs.items() if k.endswith("_id")},
            **(
                {"request_id": message.options["request_id"]}
                if "request_id" in message.options
                else {}
            ),
        )

    def after_process_message(
        self, broker: Broker, message: Message, *, result=None, exception=None
    ) -> None:
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message
