"""Writing to the transactional outbox: the message is stored in the same transaction as
the change it announces, and the relay sends it to the broker after commit."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.sql.dml import Insert

from fulfillment.models import OutboxMessage


def outbox_insert(message: tuple[str, str], **kwargs: Any) -> Insert:
    """An INSERT for the outbox row of ``message`` (an (actor, queue) pair), to be
    executed inside the caller's transaction. Messages carry ids, never objects.

    The ``request_id`` bound to the log context (by the API for a request, by the
    workers for a step a request started) goes with the row, so one request can be
    followed through every step it sets off."""
    actor_name, queue_name = message
    return insert(OutboxMessage).values(
        actor_name=actor_name, queue_name=queue_name, kwargs=kwargs, request_id=current_request_id()
    )


def current_request_id() -> str | None:
    """The request id bound to the log context, for outbox rows written by hand."""
    return structlog.contextvars.get_contextvars().get("request_id")


#: The channel the outbox trigger notifies on every commit that adds rows.
OUTBOX_CHANNEL = "fulfillment_outbox"
