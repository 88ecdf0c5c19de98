"""The broker factory: Redis from ``REDIS_URL`` by default, RabbitMQ when ``BROKER_URL``
is ``amqp://…``. The middleware list is explicit; nothing is built at import time."""

from __future__ import annotations

from dramatiq import Broker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from fulfillment.settings import Settings
from workers.middleware.dead_letters import DeadLetterHook, OnDead
from workers.middleware.log_context import LogContext
from workers.middleware.step_metrics import StepMetrics

#: Redis key prefix of every Dramatiq key.
NAMESPACE = "fulfillment"


def broker_url(settings: Settings) -> str:
    url = settings.broker_url or settings.redis_url
    if url is None:
        raise RuntimeError("no broker configured; start the embedded Redis first")
    return url


def middleware(
    settings: Settings, *, prometheus: bool = True, on_dead: OnDead | None = None
) -> list[Middleware]:
    """Dramatiq runs ``after_*`` hooks in reverse order, so the dead-letter hook and
    the step metrics stand before Retries: they run after it has decided whether the
    message will be retried or has failed for good."""
    stack: list[Middleware] = [
        AgeLimit(),  # only messages sent with max_age expire; pipeline messages never do
        TimeLimit(time_limit=settings.worker_time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        CurrentMessage(),
        LogContext(),
        StepMetrics(),
        DeadLetterHook(on_dead),
        Retries(
            max_retries=settings.worker_max_retries,
            min_backoff=settings.worker_min_backoff_ms,
            max_backoff=settings.worker_max_backoff_ms,
        ),
    ]
    if prometheus:
        from dramatiq.middleware.prometheus import Prometheus  # import creates its folder

        stack.append(Prometheus())
    return stack


def create_broker(
    settings: Settings, *, prometheus: bool = False, on_dead: OnDead | None = None
) -> Broker:
    url = broker_url(settings)
    stack = middleware(settings, prometheus=prometheus, on_dead=on_dead)
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=stack, confirm_delivery=True)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(
        url=url,
        namespace=NAMESPACE,
        middleware=stack,
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
        dead_message_ttl=settings.dead_message_ttl_ms,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
