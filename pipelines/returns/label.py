"""``create_return_label``: a customer's return gets its prepaid EasyPost label, once.

EasyPost takes no idempotency keys, so the return's shipment carries the reference
``return_<id>`` and the gateway looks for it before creating one (as ``ship_order``
does with the order id): a retry, a duplicate message or a crash between the purchase
and the commit buys no second label. The label is kept, the return moves
``requested -> label_created``, the order's timeline notes it and the customer's
e-mail (one per return) is claimed in one commit, under the order's row lock.

When the warehouse has received a return (``api.returns.views``), its refund settles through
``pipelines.payments.refunds``, whose success moves the return to ``refunded``
(``mark_refunded``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update

from fulfillment.checkpoints import reach
from fulfillment.locks import LOCK_TRACKING_CODES
from fulfillment.models import Order, Return
from fulfillment.returns import ReturnStatus as R
from integrations.ports import NotificationKind
from pipelines import sql
from pipelines.common import SKIPPED, SUCCESS, begin, lock_order, reading, record
from pipelines.deps import Deps
from pipelines.mail.claim import tell_customer
from pipelines.saga import TRACKING_TARGETS
from pipelines.shipping.early_trackers import claim_early_trackers

_READ = (
    select(Return.status, Return.order_id, Order.shipping_address)
    .join(Order, Order.id == Return.order_id)
    .where(Return.id == bindparam("b_return"))
)
_KEEP_LABEL = (
    update(Return)
    .where(Return.id == bindparam("b_return"), Return.status == R.REQUESTED.value)
    .values(status=R.LABEL_CREATED.value, shipment_id=bindparam("b_shipment"),
            tracking_code=bindparam("b_code"), label_url=bindparam("b_url"),
            updated_at=bindparam("b_at"))
    .returning(Return.id)
)  # fmt: skip
#: A return whose label's tracker reports it on its way (``api.intake.providers`` does the same).
_ON_ITS_WAY = (
    update(Return)
    .where(Return.id == bindparam("b_return"), Return.status == R.LABEL_CREATED.value)
    .values(status=R.IN_TRANSIT.value, updated_at=bindparam("b_at"))
)
_REFUNDED = (
    update(Return)
    .where(Return.refund_id == bindparam("b_refund"), Return.status == R.RECEIVED.value)
    .values(status=R.REFUNDED.value, updated_at=bindparam("b_at"))
    .returning(Return.id)
)


def create_return_label(deps: Deps, return_id: str, *, attempt: int = 1) -> str:
    """Buy the return's label (found again on a retry), keep it and mail it, once."""
    rid = uuid.UUID(str(return_id))
    with reading(deps) as session:
        row = sql.one(session, _READ, {"b_return": rid})
        if row is None or row.status != R.REQUESTED.value:
            return SKIPPED
        order_id, address = row.order_id, dict(row.shipping_address)
    label = deps.carrier.ship_return(return_id=str(rid), address=address)
    with begin(deps) as session:
        # the code's tracker events and this commit take turns (fulfillment.locks)
        sql.one(session, LOCK_TRACKING_CODES, {"codes": [label.tracking_code]})
        order = lock_order(session, order_id)
        kept = sql.one(session, _KEEP_LABEL, {
            "b_return": rid, "b_shipment": label.shipment_id, "b_code": label.tracking_code,
            "b_url": label.label_url, "b_at": deps.now()})  # fmt: skip
        if order is None or kept is None:
            return SKIPPED
        early = claim_early_trackers(session, label.tracking_code, order_id)
        if any(status in TRACKING_TARGETS for status in early):  # it overtook this commit
            sql.run(session, _ON_ITS_WAY, {"b_return": rid, "b_at": deps.now()})
        record(session, order, step="return_label", attempt=attempt, outcome="label_created",
               details={"return": str(rid), "shipment": label.shipment_id,
                        "tracking_code": label.tracking_code})  # fmt: skip
        tell_customer(session, order, NotificationKind.RETURN_LABEL, once_per=str(rid),
                      return_id=str(rid), label_url=label.label_url,
                      tracking_code=label.tracking_code)  # fmt: skip
        reach("create_return_label.before_commit")
    return SUCCESS


def mark_refunded(session, order, refund_id: str, *, attempt: int) -> None:
    """In the commit that keeps a succeeded refund: the received return it pays for
    (if any) becomes ``refunded``, on the order's timeline too."""
    paid = sql.one(session, _REFUNDED, {"b_refund": uuid.UUID(str(refund_id)),
                                        "b_at": session.info["now"]()})  # fmt: skip
    if paid is not None:
        record(session, order, step="return_refunded", attempt=attempt, outcome="refunded",
               details={"return": str(paid.id), "refund": str(refund_id)})  # fmt: skip
