"""Label voids: a label bought for goods that will not ship is given back to the carrier
(EasyPost's shipment refund) and followed until the carrier settles it.

Such a label exists when an order was cancelled or refunded after it reached
``fulfilling`` and a label purchase's commit was lost (the worker died between
EasyPost's answer and the commit): the shipment exists at EasyPost under the order's
reference, but not in our ``shipments`` table. The compensation plan queues
``void_label`` for every such order (``pipelines.compensation.undo``); it finds the
label by reference, asks for the void once and stores it in ``label_voids``. The
sweeper re-sends ``settle_label_void`` for every void still ``submitted``
(``workers.sweeper.redrive_label_voids``): ``refunded`` and ``not_applicable`` end it;
``rejected`` (the carrier scanned the label) sends the order to ``needs_attention``
with the reason, as money and a parcel may be out there.
"""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert

from fulfillment.models import LabelVoid, Order, Shipment
from fulfillment.packages import label_references
from fulfillment.states import OrderStatus as S
from integrations.ports import LabelRefundStatus as R
from monitoring import metrics
from pipelines import sql
from pipelines.common import (
    SKIPPED,
    SUCCESS,
    after_commit,
    begin,
    lock_order,
    move,
    reading,
    record,
)  # fmt: skip
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder

#: Orders whose stray label is voided: they will never ship.
NOT_SHIPPING = frozenset({S.CANCELLED, S.REFUNDED})
#: Where a label may be bought: the order packed, or some of its packages gone.
SHIPPING = frozenset({S.FULFILLING, S.PARTIALLY_SHIPPED})
#: How a void may end.
SETTLED = frozenset({R.REFUNDED, R.REJECTED, R.NOT_APPLICABLE})

#: A void asked for, once per label.
_VOID = (
    insert(LabelVoid)
    .values(shipment_id=bindparam("b_shipment"), order_id=bindparam("b_order"),
            status=bindparam("b_status"))
    .on_conflict_do_nothing(index_elements=["shipment_id"])
    .returning(LabelVoid.shipment_id)
)  # fmt: skip
#: A submitted void settles once.
_SETTLE = (
    update(LabelVoid)
    .where(LabelVoid.shipment_id == bindparam("b_shipment"), LabelVoid.status == R.SUBMITTED.value)
    .values(status=bindparam("b_status"), settled_at=bindparam("b_at"))
    .returning(LabelVoid.order_id)
)  # fmt: skip


def void_label(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Void each label the carrier holds under one of the order's references (one per
    package: ``fulfillment.packages.label_references``), once, if the order will not ship
    (cancelled, refunded, or a refund under way: ``ship_order`` skips it) and that label
    is not a parcel's own."""
    with reading(deps) as session:
        row = session.execute(
            select(Order.status, Order.refund_due, Order.allocation)
            .where(Order.id == uuid.UUID(order_id))
        ).one_or_none()  # fmt: skip
        shipped = set(session.scalars(
            select(Shipment.shipment_id).where(Shipment.order_id == uuid.UUID(order_id))
        ))  # fmt: skip
    if row is None or not (row.refund_due or S(row.status) in NOT_SHIPPING):
        return SKIPPED  # it may still ship: its label is not stray
    outcome = SKIPPED
    for reference in label_references(order_id, row.allocation or []):
        label = deps.carrier.find_shipment(reference)
        if label is None or label.shipment_id in shipped:
            continue  # nothing was bought, or the label went out with the parcel
        if _void(deps, order_id, label, attempt=attempt) == SUCCESS:
            outcome = SUCCESS
    return outcome


def _void(deps: Deps, order_id: str, label, *, attempt: int) -> str:
    refund_status = R(deps.carrier.void_label(label.shipment_id))
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None:
            return SKIPPED
        stored = sql.one(session, _VOID, {"b_shipment": label.shipment_id, "b_order": order.id,
                                          "b_status": R.SUBMITTED.value})  # fmt: skip
        if stored is None:
            return SKIPPED  # a duplicate message stored it first
        record(session, order, step="void_label", attempt=attempt, outcome="void_submitted",
               details={"shipment_id": label.shipment_id,
                        "tracking_code": label.tracking_code})  # fmt: skip
        _count(session, R.SUBMITTED)
        if refund_status in SETTLED:
            _settle(session, order, label.shipment_id, refund_status, attempt=attempt)
    return SUCCESS


def settle_label_void(deps: Deps, shipment_id: str, *, attempt: int = 1) -> str:
    """Ask the carrier where a submitted void stands; record it once it has settled."""
    with reading(deps) as session:
        void = session.get(LabelVoid, shipment_id)
        if void is None or void.status != R.SUBMITTED:
            return SKIPPED
        order_id = str(void.order_id)
    current = deps.carrier.label_refund_status(shipment_id)
    if current is None or R(current) not in SETTLED:
        return SKIPPED
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None:
            return SKIPPED
        if not _settle(session, order, shipment_id, R(current), attempt=attempt):
            return SKIPPED
    return SUCCESS


def _settle(session, order: LockedOrder, shipment_id: str, outcome: R, *, attempt: int) -> bool:
    """Record how the carrier settled the void, once; a rejected one sends the order to
    an operator (``needs_attention``, its reason in the timeline and ``last_error``)."""
    if sql.one(session, _SETTLE, {"b_shipment": shipment_id, "b_status": outcome.value,
                                  "b_at": session.info["now"]()}) is None:  # fmt: skip
        return False
    details = {"shipment_id": shipment_id, "refund_status": outcome.value}
    if outcome is R.REJECTED and order.status != S.NEEDS_ATTENTION:
        reason = (f"the carrier rejected the void of label {shipment_id}: it was scanned, "
                  "or cannot be refunded; check the parcel and the carrier's refund")  # fmt: skip
        order.attention_from = order.status
        move(session, order, S.NEEDS_ATTENTION, step="settle_label_void", attempt=attempt,
             outcome="failed", error=reason, details=details, reopen=True)  # fmt: skip
    else:
        record(session, order, step="settle_label_void", attempt=attempt,
               outcome=f"void_{outcome.value}", details=details)  # fmt: skip
    _count(session, outcome)
    return True


def _count(session, outcome: R) -> None:
    after_commit(session, metrics.label_voids_total.labels(outcome.value).inc)
