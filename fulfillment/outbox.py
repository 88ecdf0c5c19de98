"""Writing to the transactional outbox: the message is stored in the same transaction as
the change it announces, and the relay sends it to the broker after commit."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.sql.dml import Insert

from fulfillment.models import OutboxMessage


def outbox_insert(
    message: tuple[str, str], *, request_id: str | None = None, **kwargs: Any
) -> Insert:
    """An INSERT for the outbox row of ``message`` (an (actor, queue) pair), to be
    executed inside the caller's transaction. Messages carry ids, never objects.

    The request id goes with the row, so one request can be followed through every step
    it sets off: ``request_id`` when given (the sweeper passes the order's), else the
    one bound to the log context (by the API for a request, by a step for its order)."""
    actor_name, queue_name = message
    return insert(OutboxMessage).values(
        actor_name=actor_name, queue_name=queue_name, kwargs=kwargs,
        request_id=request_id or current_request_id(),
    )  # fmt: skip


def current_request_id() -> str | None:
    """The request id bound to the log context, for outbox rows written by hand."""
    return structlog.contextvars.get_contextvars().get("request_id")


#: The channel the outbox trigger notifies on every commit that adds rows.
OUTBOX_CHANNEL = "fulfillment_outbox"
