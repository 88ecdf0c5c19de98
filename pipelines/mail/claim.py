"""The customer's e-mail, as a step calls for it: claimed in the step's transaction,
at most one of a kind per order, and sent once that transaction has committed by the
sender the composition root handed in (``Deps.send_mail``, which is
``pipelines.mail.notify.send_claimed``). Light on purpose: the API reaches it through
the refund rules, and must not load the mail stage."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from fulfillment.notifications import claimed_intent
from pipelines import sql
from pipelines.common import after_commit
from pipelines.locked_order import LockedOrder


def tell_customer(
    session: Session, order: LockedOrder, kind: str, *, once_per: str | None = None, **data: Any
) -> None:
    """At most one e-mail of ``kind`` per order (per ``once_per`` within the order, when
    given: one per refund): a second call is a no-op. The e-mail is
    claimed for this step in its transaction and sent as soon as that commits, by the
    same worker, with no message of its own (``Deps.send_mail``)."""
    claimed = sql.one(
        session,
        *claimed_intent(
            kind, user_id=order.customer_id, order_id=order.id, data=data, once_per=once_per
        ),
    )
    if claimed is not None:
        deps = session.info["deps"]
        after_commit(session, lambda: deps.send_mail(deps, claimed))
