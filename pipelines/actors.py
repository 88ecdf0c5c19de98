"""The Dramatiq actors: one thin actor per message, each running the steps the saga map
(``pipelines.saga``) gives that message, in order, in one go.

Actors are registered on an explicit broker by the worker's boot hook (nothing is
declared at import time). Messages carry ids; the attempt number comes from the
message's retry count.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq
from dramatiq.middleware import CurrentMessage

from fulfillment import messages as m
from integrations.errors import PermanentProviderError
from pipelines.common import new_message
from pipelines.deps import Deps
from pipelines.intake.provider_events import process_webhook
from pipelines.mail.notify import send_notification, send_welcome_email
from pipelines.merchant_webhooks.deliver import deliver_webhook, deliver_webhooks
from pipelines.operations.attention import resume
from pipelines.outcome import FAILED, NotYet, combined, put_outcome
from pipelines.payments.capture import capture_payment
from pipelines.payments.compensation import refund_payment
from pipelines.payments.payment import expire_reservation, request_payment, settle_payment
from pipelines.payments.refunds import process_refund
from pipelines.returns.label import create_return_label
from pipelines.saga import steps_of
from pipelines.shipping.addresses import recheck_address
from pipelines.shipping.labels import settle_label_void, void_label
from pipelines.shipping.ship import fulfil_order, ship_order
from pipelines.shipping.tracking import apply_tracking, refresh_tracking
from pipelines.stock.reservation import reserve_inventory

Step = Callable[..., str]

#: Every step by name: the saga map names them.
STEPS: dict[str, Step] = {
    step.__name__: step
    for step in (reserve_inventory, request_payment, settle_payment, refund_payment,
                 expire_reservation, fulfil_order, ship_order, refresh_tracking,
                 apply_tracking, process_webhook, send_notification, send_welcome_email,
                 capture_payment, process_refund, deliver_webhook, deliver_webhooks)
} | {step.__name__: step for step in (recheck_address, void_label, settle_label_void)} | {
    create_return_label.__name__: create_return_label,
}  # fmt: skip

#: (message, pipeline) for every actor.
ACTORS: tuple[tuple[tuple[str, str], str], ...] = (
    (m.RESERVE_INVENTORY, "order"),
    (m.REQUEST_PAYMENT, "order"),
    (m.SETTLE_PAYMENT, "order"),
    (m.REFUND_PAYMENT, "order"),
    (m.CAPTURE_PAYMENT, "order"),
    (m.PROCESS_REFUND, "order"),
    (m.EXPIRE_RESERVATION, "order"),
    (m.FULFIL_ORDER, "order"),
    (m.SHIP_ORDER, "order"),
    (m.REFRESH_TRACKING, "order"),
    (m.APPLY_TRACKING, "order"),
    (m.PROCESS_WEBHOOK, "webhooks"),
    (m.SEND_NOTIFICATION, "notifications"),
    (m.WELCOME_USER, "registration"),
    (m.DELIVER_WEBHOOK, "merchant_webhooks"),
    (m.DELIVER_WEBHOOKS, "merchant_webhooks"),
    (m.RECHECK_ADDRESS, "order"),
    (m.VOID_LABEL, "order"),
    (m.SETTLE_LABEL_VOID, "labels"),
    (m.CREATE_RETURN_LABEL, "returns"),
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
    for message, pipeline in ACTORS:
        actor_name, queue_name = message
        actors[actor_name] = dramatiq.Actor(
            _bind(message, deps),
            broker=broker,
            actor_name=actor_name,
            queue_name=queue_name,
            priority=0,
            # a provider's permanent refusal that a step did not turn into compensation
            # itself will not get better with retries: dead-letter it at once
            options={"pipeline": pipeline, "throws": (PermanentProviderError,)},
        )
    return actors


def run_steps(deps: Deps, message: tuple[str, str], *, attempt: int = 1, **kwargs: str) -> str:
    """The message's steps in order; a failed step (the compensation path) ends it."""
    new_message()
    outcomes: list[str] = []
    for name in steps_of(message):
        outcomes.append(STEPS[name](deps, **kwargs, attempt=attempt))
        if outcomes[-1] == FAILED:
            break
    return combined(outcomes)


def _bind(message: tuple[str, str], deps: Deps) -> Callable[..., None]:
    def run(**kwargs: str) -> None:
        if "order_id" in kwargs and is_redrive():
            resume(deps, kwargs["order_id"])
        try:
            put_outcome(run_steps(deps, message, attempt=current_attempt(), **kwargs))
        except NotYet as exc:  # asked again once it can be known: Dramatiq's quiet retry
            raise dramatiq.Retry(str(exc), delay=max(1, round(exc.retry_in * 1000))) from exc

    run.__name__ = message[0]
    return run
