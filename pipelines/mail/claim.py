"""The customer's e-mail, as a step calls for it: claimed in the step's transaction,
at most one of a kind per order, and sent once that transaction has committed by the
sender the composition root handed in (``Deps.send_mail``, which is
``pipelines.mail.notify.send_claimed``). Light on purpose: the API reaches it through
the refund rules, and must not load the mail stage."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session

from fulfillment.notifications import claimed_intent
from pipelines import sql
from pipelines.common import after_commit
from pipelines.locked_order import LockedOrder
from pipelines.mail.data import CLAIMED_WITH_FACTS, composed_at_claim, reads_at_send

log = structlog.get_logger("pipelines.mail")


def tell_customer(
    session: Session, order: LockedOrder, kind: str, *, once_per: str | None = None, **data: Any
) -> None:
    """At most one e-mail of ``kind`` per order (per ``once_per`` within the order, when
    given: one per refund): a second call is a no-op. The e-mail is
    claimed for this step in its transaction and sent as soon as that commits, by the
    same worker, with no message of its own (``Deps.send_mail``). What the mail shows
    of the order, when this process does not hold it, is read by the claim's own
    statement and composed here, so the send reads nothing after the commit."""
    claim, params = claimed_intent(
        kind, user_id=order.customer_id, order_id=order.id, data=data, once_per=once_per
    )
    reads = reads_at_send(kind, order.id, data)
    claimed = sql.one(session, CLAIMED_WITH_FACTS if reads else claim, params)
    if claimed is None:
        return
    composed = None
    if reads:
        try:
            composed = composed_at_claim(claimed)
        except Exception:  # composed again when sent; the step's work stands
            log.exception("e-mail data not composed at its claim", kind=kind)
    deps = session.info["deps"]
    after_commit(session, lambda: deps.send_mail(deps, claimed, composed))
