"""Writing to the transactional outbox: the message is stored in the same transaction as
the change it announces, and the relay sends it to the broker after commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.sql.dml import Insert

from fulfillment.models import OutboxMessage


def outbox_insert(message: tuple[str, str], **kwargs: Any) -> Insert:
    """An INSERT for the outbox row of ``message`` (an (actor, queue) pair), to be
    executed inside the caller's transaction. Messages carry ids, never objects."""
    actor_name, queue_name = message
    return insert(OutboxMessage).values(actor_name=actor_name, queue_name=queue_name, kwargs=kwargs)


#: The channel the outbox trigger notifies on every commit that adds rows.
OUTBOX_CHANNEL = "fulfillment_outbox"
