"""Steps 4 and 5: pick and pack (in the payment's commit), then buy the label in the
same message; and tracking, which only ever moves an order forward. A shipment that
fails for good is refunded. A tracker event that overtook the shipment's commit is
applied by that commit."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import insert

from fulfillment.checkpoints import reach
from fulfillment.line_cancellation import remaining
from fulfillment.locks import LOCK_LABEL_PURCHASE, LOCK_TRACKING_CODES
from fulfillment.messages import VOID_LABEL
from fulfillment.models import Fulfillment, Order, Shipment
from fulfillment.states import OrderStatus as S
from fulfillment.states import can_transition
from integrations.errors import PermanentProviderError
from integrations.ports import Label, NotificationKind, Parcel, TrackerStatus
from pipelines import compensation as plans
from pipelines import sql
from pipelines.common import (
    FAILED,
    SKIPPED,
    SUCCESS,
    begin,
    entered_here,
    lock_order,
    move,
    order_lines,
    reading,
    record,
    send_later,
)
from pipelines.compensation import compensate
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.saga import REFUNDABLE, TRACKER_RANK, TRACKING_FAILURES, TRACKING_TARGETS
from pipelines.shipping.addresses import address_refused, is_refused_address
from pipelines.shipping.early_trackers import claim_early_trackers
from pipelines.shipping.labels import NOT_SHIPPING
from pipelines.stock.consumption import consume_stock

#: Weight of one packed unit, in ounces, until products carry their own.
UNIT_WEIGHT_OZ = 12


def _rank(status: str | None) -> int:
    return TRACKER_RANK.get(status, 0)


#: The parcel packed for an order, once.
_PACKED = (
    insert(Fulfillment).values(order_id=bindparam("b_order"), parcel_weight_oz=bindparam("b_weight"))
    .on_conflict_do_nothing(index_elements=["order_id"])
)  # fmt: skip
#: The label bought for an order, once.
_LABEL = insert(Shipment).values(
    {column: bindparam(f"b_{column}") for column in (
        "order_id", "shipment_id", "tracking_code", "tracker_id", "label_url", "carrier",
        "service", "tracker_status")}
).on_conflict_do_nothing(index_elements=["order_id"])  # fmt: skip


def parcel_weight(session, order: LockedOrder) -> int:
    """The packed parcel's weight in ounces: the same figure ``pack`` records."""
    lines = remaining(order_lines(session, order.id), order.cancelled_lines)
    return UNIT_WEIGHT_OZ * sum(quantity for _, quantity in lines)


def pack(session, order: LockedOrder, *, step: str, attempt: int) -> None:
    """Pick and pack, recorded with the order's move to ``fulfilling``, in the caller's
    transaction (the one that makes it ``paid``): the label is bought right after."""
    weight = parcel_weight(session, order)
    sql.run(session, _PACKED, {"b_order": order.id, "b_weight": weight})
    move(session, order, S.FULFILLING, step=step, attempt=attempt,
         details={"parcel_weight_oz": weight})  # fmt: skip


def fulfil_order(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Pack an authorized or paid order (one settled before packing joined the
    payment's commit, or one resumed by an operator); ``ship_order`` follows in the same
    message."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in (S.AUTHORIZED, S.PAID) or order.refund_due:
            return SKIPPED
        pack(session, order, step="fulfil_order", attempt=attempt)
    return SUCCESS


def ship_order(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Buy the label under the order's purchase lock (``fulfillment.locks``), not its
    row lock: a duplicate message running at the same time waits and then finds the
    order shipped, while a customer's or an operator's cancel or hold is answered at
    once and the purchase's end settles it (the order re-locked and re-checked; a label
    for an order that no longer ships is voided). Only the run that packed the order in
    this very message buys without looking first: any other (a retry, a message
    redelivered after a worker died mid-purchase, the sweeper) asks the carrier for the
    shipment an earlier try may have bought."""
    with begin(deps) as session:
        sql.one(session, LOCK_LABEL_PURCHASE, {"order_id": str(order_id)})
        order = sql.one(session, _TO_SHIP, {"b_order": uuid.UUID(str(order_id))})
        if order is None or order.status != S.FULFILLING or order.refund_due:
            return SKIPPED
        weight = parcel_weight(session, order)
        first_try = attempt == 1 and entered_here(order.id, S.FULFILLING)
        try:
            label = deps.carrier.ship(order_id=str(order_id), address=dict(order.shipping_address),
                                      parcel=Parcel(weight_oz=float(weight)), lookup=not first_try,
                                      from_address=order.ship_from)  # fmt: skip
        except PermanentProviderError as exc:
            failure, refusal = str(exc), exc
        else:
            reach("ship_order.label_bought")
            return _keep_label(session, order.id, label, attempt=attempt)
    if is_refused_address(refusal):  # the customer fixes the address; nothing is refunded
        return address_refused(deps, order_id, refusal, step="ship_order", attempt=attempt)
    return shipping_failed(deps, order_id, step="ship_order", attempt=attempt, error=failure)


#: What ``ship_order`` reads before the purchase (no row lock: see ``ship_order``), with
#: the address the label ships from: that of the location giving most of the order's
#: units (None for the default location: the carrier's configured ship-from address,
#: as before locations). An order split across locations still ships in one parcel
#: until packages are built (issue 23, part 3).
_TO_SHIP = text("""
    SELECT o.id, o.status, o.refund_due, o.shipping_address, o.cancelled_lines,
           (SELECT CASE WHEN l.is_default THEN NULL ELSE l.address END
            FROM jsonb_array_elements(o.allocation) a
            JOIN locations l ON l.id = (a->>'location_id')::uuid
            ORDER BY (a->>'quantity')::int DESC, l.priority, l.id LIMIT 1) AS ship_from
    FROM orders o WHERE o.id = :b_order
""").columns(id=Order.id.type, status=Order.status.type, refund_due=Order.refund_due.type,
             shipping_address=Order.shipping_address.type, ship_from=Order.shipping_address.type,
             cancelled_lines=Order.cancelled_lines.type)  # fmt: skip


def _keep_label(session, order_id, label: Label, *, attempt: int) -> str:
    """The purchase's commit: the tracking code locked first (its tracker events and
    this commit take turns), then the order; shipped if it still waits for its label."""
    sql.one(session, LOCK_TRACKING_CODES, {"codes": [label.tracking_code]})
    order = lock_order(session, order_id)
    if order is None:
        return SKIPPED
    if order.status != S.FULFILLING or order.refund_due:
        _label_not_used(session, order, label, attempt=attempt)
        return SKIPPED
    _store_label(session, order, label)
    if order.capture_method == "manual" and order.amount_captured == 0:
        order.capture_due = True  # captured next (pipelines.payments.capture)
    move(session, order, S.SHIPPED, step="ship_order", attempt=attempt,
         details={"tracking_code": label.tracking_code, "carrier": label.carrier})  # fmt: skip
    # the address as shipped (a change waits for the purchase to end: see
    # api.orders.addresses), and the shipment, so the mail needs no read of its own
    tell_customer(session, order, NotificationKind.SHIPPED,
                  tracking_code=label.tracking_code, carrier=label.carrier,
                  shipping_address=dict(order.shipping_address))  # fmt: skip
    failure = _apply_early_trackers(session, order, label.tracking_code, attempt=attempt)
    consume_stock(session, order)
    if failure is not None:  # after the stock left with the parcel, as for a late failure
        compensate(session, order, plans.shipping_failed(error=failure), step="apply_tracking",
                   attempt=attempt)  # fmt: skip
    reach("ship_order.before_commit")
    return SUCCESS


def _label_not_used(session, order: LockedOrder, label: Label, *, attempt: int) -> None:
    """The order moved on while its label was bought (cancelled, held, refunded). The
    label is not stored: a release or resume ships it (the carrier finds it by the
    order's reference), and an order that will not ship gets ``void_label`` again from
    this commit, as the cancel's own may have run before EasyPost sold the label."""
    record(session, order, step="ship_order", attempt=attempt, outcome="label_not_used",
           details={"shipment_id": label.shipment_id, "tracking_code": label.tracking_code})  # fmt: skip
    if order.refund_due or S(order.status) in NOT_SHIPPING:
        send_later(session, VOID_LABEL, order_id=order.id)


def _apply_early_trackers(session, order: LockedOrder, code: str, *, attempt: int) -> str | None:
    """Apply, in the shipment's own commit, the tracker events that arrived before it:
    the furthest status wins, and each event is marked processed. Answers the failure
    to compensate for when one reported that the parcel will not arrive (and none that
    it was delivered): its refund follows as for a failure reported later."""
    statuses = claim_early_trackers(session, code, order.id)
    if not statuses:
        return None
    furthest = max(statuses, key=_rank)
    shipment = session.get(Shipment, order.id)
    if shipment is not None and _rank(furthest) > _rank(shipment.tracker_status):
        shipment.tracker_status = furthest.value
    target = TRACKING_TARGETS.get(furthest)
    if target is not None and can_transition(S(order.status), target):
        move(session, order, target, step="apply_tracking", attempt=attempt,
             details={"tracker_status": furthest.value, "early": True})  # fmt: skip
        if target == S.DELIVERED:
            tell_customer(session, order, NotificationKind.DELIVERED)
            return None
    failed = next((status for status in statuses if status in TRACKING_FAILURES), None)
    return None if failed is None else f"carrier reported {failed.value}"


def _store_label(session, order: LockedOrder, label: Label) -> None:
    sql.run(session, _LABEL, {
        "b_order_id": order.id, "b_shipment_id": label.shipment_id,
        "b_tracking_code": label.tracking_code, "b_tracker_id": label.tracker_id,
        "b_label_url": label.label_url, "b_carrier": label.carrier, "b_service": label.service,
        "b_tracker_status": TrackerStatus.PRE_TRANSIT.value,
    })  # fmt: skip


def shipping_failed(deps: Deps, order_id: str, *, step: str, attempt: int, error: str) -> str:
    """Compensation: the goods will not reach the customer. Release or restock, refund
    (the refund step then marks the order refunded) and tell the customer."""
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or order.status not in REFUNDABLE or order.refund_due:
            return SKIPPED
        compensate(session, order, plans.shipping_failed(error=error), step=step, attempt=attempt)
        reach("shipping_failed.before_commit")
    return FAILED


def refresh_tracking(deps: Deps, order_id: str, *, attempt: int = 1) -> str:
    """Poll the carrier when no tracker webhook came (the sweeper sends this)."""
    with reading(deps) as session:
        shipment = session.scalar(select(Shipment).where(Shipment.order_id == order_id))
        if shipment is None:
            return SKIPPED
        tracker_id, code = shipment.tracker_id, shipment.tracking_code
    try:
        tracking = (
            deps.carrier.retrieve_tracker(tracker_id)
            if tracker_id
            else deps.carrier.find_tracker(code)
        )
    except PermanentProviderError as exc:  # the carrier no longer knows the tracker
        with begin(deps) as session:
            order = lock_order(session, order_id)
            if order is not None:
                record(session, order, step="refresh_tracking", attempt=attempt,
                       outcome="failed", error=str(exc))  # fmt: skip
        return FAILED
    if tracking is None:
        return SKIPPED
    return apply_tracking(deps, order_id, status=tracking.status.value, attempt=attempt)


def apply_tracking(deps: Deps, order_id: str, *, status: str, attempt: int = 1) -> str:
    """A tracker status for the order; late or repeated ones never move it back."""
    try:
        tracker = TrackerStatus(status)
    except ValueError:
        tracker = TrackerStatus.UNKNOWN
    if tracker in TRACKING_FAILURES:
        return shipping_failed(
            deps,
            order_id,
            step="apply_tracking",
            attempt=attempt,
            error=f"carrier reported {tracker.value}",
        )
    target = TRACKING_TARGETS.get(tracker)
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or target is None or order.refund_due:
            return SKIPPED
        shipment = session.get(Shipment, order.id)
        if shipment is not None and _rank(tracker) > _rank(shipment.tracker_status):
            shipment.tracker_status = tracker.value
        if not can_transition(S(order.status), target) or order.status == S.NEEDS_ATTENTION:
            return SKIPPED
        move(
            session,
            order,
            target,
            step="apply_tracking",
            attempt=attempt,
            details={"tracker_status": tracker.value},
        )
        if target == S.DELIVERED:
            tell_customer(session, order, NotificationKind.DELIVERED)
    return SUCCESS
