"""The composition root for worker processes: real gateways, engine, broker, actors."""

from __future__ import annotations

import dramatiq

from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.settings import Settings
from integrations.easypost_gateway import build_easypost_carrier
from integrations.sendgrid_gateway import build_sendgrid_mailer
from integrations.stripe_gateway import build_stripe_gateway
from integrations.stripe_tax import build_stripe_tax
from pipelines.actors import register_actors
from pipelines.deps import Deps
from pipelines.mail.notify import send_claimed
from pipelines.mail.sent import SentMailLog
from pipelines.operations.attention import mark_needs_attention
from pipelines.shipping.ledger import StoredShipmentLedger
from workers.broker import create_broker

#: Connections a worker process opens past its pool at a peak, each closed when given back.
WORKER_POOL_OVERFLOW = 4


def worker_pool_size(settings: Settings) -> int:
    """Connections a worker process keeps: two per thread. A step may hold two at once
    (the label's purchase lock while the carrier's ledger writes in a transaction of its
    own), and the process's own threads (the sent-mail log) take one now and then: 14
    were in use at once with 8 threads. A connection opened past the pool is closed
    when given back, and the next one is a new server process that plans every
    statement afresh: with ``threads + 2`` kept and as many more allowed, the bench's
    400-order runs (two worker processes) opened 36 to 55 server processes; with two
    per thread kept, 19 to 27. The most a process may hold stays ``2 * threads + 4``,
    as before."""
    return 2 * settings.worker_threads


def build_deps(settings: Settings, *, pool_size: int | None = None) -> Deps:
    if pool_size is None:
        engine = create_sync_db_engine(settings, pool_size=worker_pool_size(settings),
                                       max_overflow=WORKER_POOL_OVERFLOW)  # fmt: skip
    else:  # a caller's own size (tests, one-off commands): the engine's own overflow
        engine = create_sync_db_engine(settings, pool_size=pool_size)
    sessions = sync_session_factory(engine)
    return Deps(
        sessions=sessions,
        payments=build_stripe_gateway(settings),
        mailer=build_sendgrid_mailer(settings),
        carrier=build_easypost_carrier(settings, ledger=StoredShipmentLedger(sessions)),
        settings=settings,
        send_mail=send_claimed,
        sent_mail=SentMailLog(sessions),
        tax=build_stripe_tax(settings),
    )


def order_dead_letter_handler(deps: Deps):
    """Marks the order of a dead message ``needs_attention`` with its last error."""

    def on_dead(message, error: str) -> None:
        order_id = message.kwargs.get("order_id")
        if order_id:
            attempt = message.options.get("retries", 0)
            mark_needs_attention(
                deps, order_id, step=message.actor_name, attempt=attempt, error=error
            )

    return on_dead


def build_worker_broker(
    settings: Settings, deps: Deps, *, prometheus: bool = True
) -> dramatiq.Broker:
    broker = create_broker(settings, prometheus=prometheus, on_dead=order_dead_letter_handler(deps))
    register_actors(broker, deps)
    return broker
