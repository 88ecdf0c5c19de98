"""The Dramatiq actors: one thin actor per step, each a single pipeline call.

Actors are registered on an explicit broker by the worker's boot hook (nothing is
declared at import time). Messages carry ids; the attempt number comes from the
message's retry count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import CurrentMessage

from fulfillment import messages as m
from integrations.errors import PermanentProviderError
from pipelines.attention import resume
from pipelines.deps import Deps
from pipelines.notify import send_notification, send_welcome_email
from pipelines.payment import expire_reservation, refund_payment, request_payment, settle_payment
from pipelines.reservation import reserve_inventory
from pipelines.shipping import apply_tracking, fulfil_order, refresh_tracking, ship_order
from pipelines.webhooks import process_webhook

Step = Callable[..., str]

#: What the last step run on this thread returned (success, failed, skipped). Actors
#: return None, as Dramatiq expects without a results backend; the step metrics
#: middleware reads the outcome from here.
_outcome = threading.local()


def take_outcome() -> str | None:
    value = getattr(_outcome, "value", None)
    _outcome.value = None
    return value


#: (message, step function, pipeline) for every actor.
ACTORS: tuple[tuple[tuple[str, str], Step, str], ...] = (
    (m.RESERVE_INVENTORY, reserve_inventory, "order"),
    (m.REQUEST_PAYMENT, request_payment, "order"),
    (m.SETTLE_PAYMENT, settle_payment, "order"),
    (m.REFUND_PAYMENT, refund_payment, "order"),
    (m.EXPIRE_RESERVATION, expire_reservation, "order"),
    (m.FULFIL_ORDER, fulfil_order, "order"),
    (m.SHIP_ORDER, ship_order, "order"),
    (m.REFRESH_TRACKING, refresh_tracking, "order"),
    (m.APPLY_TRACKING, apply_tracking, "order"),
    (m.PROCESS_WEBHOOK, process_webhook, "webhooks"),
    (m.SEND_NOTIFICATION, send_notification, "notifications"),
    (m.WELCOME_USER, send_welcome_email, "registration"),
)


def current_attempt() -> int:
    message = CurrentMessage.get_current_message()
    return (message.options.get("retries", 0) + 1) if message is not None else 1


def is_redrive() -> bool:
    """True for a message an operator replayed from a dead-letter queue."""
    message = CurrentMessage.get_current_message()
    return message is not None and bool(message.options.get("redrive"))


def register_actors(broker: dramatiq.Broker, deps: Deps) -> dict[str, dramatiq.Actor]:
    actors = {}
    for (actor_name, queue_name), step, pipeline in ACTORS:
        actors[actor_name] = dramatiq.Actor(
            _bind(step, deps),
            broker=broker,
            actor_name=actor_name,
            queue_name=queue_name,
            priority=0,
            # a provider's permanent refusal that a step did not turn into compensation
            # itself will not get better with retries: dead-letter it at once
            options={"pipeline": pipeline, "throws": (PermanentProviderError,)},
        )
    return actors


def _bind(step: Step, deps: Deps) -> Callable[..., None]:
    def run(**kwargs: str) -> None:
        if "order_id" in kwargs and is_redrive():
            resume(deps, kwargs["order_id"])
        _outcome.value = step(deps, **kwargs, attempt=current_attempt())

    run.__name__ = step.__name__
    return run
