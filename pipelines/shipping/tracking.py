"""Tracking, which only ever moves an order forward: the carrier's tracker events (those
the intake's statement could not apply itself, ``api.intake.providers``), the sweeper's
polling when they stay away, and the events that overtook their shipment's commit, which
that commit applies. An order in one package moves with its parcel; an order in several
moves as its packages do (``fulfillment.packages.order_status``), and a package that
will not arrive is refunded by its lines (``pipelines.shipping.failures``)."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update

from fulfillment.models import Order, Shipment
from fulfillment.packages import FAILED as PARCEL_FAILED
from fulfillment.packages import advanced, order_status, packages_of
from fulfillment.states import OrderStatus as S
from fulfillment.states import can_transition
from integrations.errors import PermanentProviderError
from integrations.ports import NotificationKind, TrackerStatus
from pipelines.common import FAILED, SKIPPED, SUCCESS, begin, lock_order, move, reading, record
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.saga import TRACKER_RANK, TRACKING_FAILURES, TRACKING_TARGETS
from pipelines.shipping.early_trackers import claim_early_trackers
from pipelines.shipping.failures import package_failed, shipping_failed

#: A package's progress by its tracker's status (failures apart).
PARCEL_BY_TRACKER: dict[TrackerStatus, str] = {
    TrackerStatus.PRE_TRANSIT: "shipped",
    TrackerStatus.IN_TRANSIT: "in_transit",
    TrackerStatus.OUT_FOR_DELIVERY: "in_transit",
    TrackerStatus.DELIVERED: "delivered",
    TrackerStatus.AVAILABLE_FOR_PICKUP: "delivered",
}
#: An order's shipments, for the polling.
_SHIPMENTS = (
    select(Shipment.tracker_id, Shipment.tracking_code)
    .where(Shipment.order_id == bindparam("b_order"))
    .order_by(Shipment.created_at, Shipment.location_id)
)
#: Whether an order is in several packages.
_SPLIT = select(Order.allocation).where(Order.id == bindparam("b_order"))


def _rank(status: str | None) -> int:
    return TRACKER_RANK.get(status, 0)


def _tracker(status: str) -> TrackerStatus:
    try:
        return TrackerStatus(status)
    except ValueError:
        return TrackerStatus.UNKNOWN


def _split(allocation) -> bool:
    return len({str(entry["location_id"]) for entry in allocation or []}) > 1


def refresh_tracking(deps, order_id: str, *, attempt: int = 1) -> str:
    """Poll the carrier when no tracker webhook came (the sweeper sends this): every
    parcel of the order."""
    with reading(deps) as session:
        shipments = session.execute(_SHIPMENTS, {"b_order": uuid.UUID(str(order_id))}).all()
    outcome = SKIPPED
    for tracker_id, code in shipments:
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
                           outcome="failed", error=str(exc), details={"tracking_code": code})  # fmt: skip
            outcome = FAILED
            continue
        if tracking is not None:
            applied = apply_tracking(deps, order_id, status=tracking.status.value, code=code,
                                     attempt=attempt)  # fmt: skip
            outcome = applied if outcome != FAILED else outcome
    return outcome


def apply_tracking(
    deps, order_id: str, *, status: str, code: str | None = None, attempt: int = 1
) -> str:
    """A tracker status for the order (for its parcel with tracking ``code``, when the
    order is in several packages); late or repeated ones never move it back."""
    tracker = _tracker(status)
    with reading(deps) as session:
        allocation = session.scalar(_SPLIT, {"b_order": uuid.UUID(str(order_id))})
    if code is not None and _split(allocation):
        with begin(deps) as session:
            order = lock_order(session, order_id)
            if order is None or order.refund_due:
                return SKIPPED
            return apply_package_tracking(session, order, code, tracker, attempt=attempt)
    if tracker in TRACKING_FAILURES:
        return shipping_failed(deps, order_id, step="apply_tracking", attempt=attempt,
                               error=f"carrier reported {tracker.value}")  # fmt: skip
    target = TRACKING_TARGETS.get(tracker)
    with begin(deps) as session:
        order = lock_order(session, order_id)
        if order is None or target is None or order.refund_due:
            return SKIPPED
        _shipment_status(session, order.id, None, tracker)
        if not can_transition(S(order.status), target) or order.status == S.NEEDS_ATTENTION:
            return SKIPPED
        move(session, order, target, step="apply_tracking", attempt=attempt,
             details={"tracker_status": tracker.value})  # fmt: skip
        if target == S.DELIVERED:
            tell_customer(session, order, NotificationKind.DELIVERED)
    return SUCCESS


def apply_package_tracking(
    session, order: LockedOrder, code: str, tracker: TrackerStatus, *, attempt: int
) -> str:
    """Under the order's row lock: the parcel with ``code`` moves on, the order as its
    packages now stand; a parcel that will not arrive is refunded by its lines."""
    packages = packages_of(order.id, order.status, order.stock_state, order.allocation,
                           order.parcels)  # fmt: skip
    package = next((p for p in packages if p.parcel and p.parcel.get("tracking_code") == code),
                   None)  # fmt: skip
    new = PARCEL_FAILED if tracker in TRACKING_FAILURES else PARCEL_BY_TRACKER.get(tracker)
    if package is None or new is None:
        return SKIPPED
    location = str(package.location_id)
    _shipment_status(session, order.id, package.location_id, tracker)
    if not advanced(package.parcel.get("status"), new):
        return SKIPPED
    order.parcels = {**order.parcels, location: {**package.parcel, "status": new}}
    details = {"tracker_status": tracker.value,
               "package": {"id": str(package.id), "location_id": location}}  # fmt: skip
    if new == PARCEL_FAILED:
        package_failed(session, order, package, f"carrier reported {tracker.value}",
                       attempt=attempt)  # fmt: skip
        return FAILED
    target = order_status(packages_of(order.id, order.status, order.stock_state,
                                      order.allocation, order.parcels))  # fmt: skip
    if (target is None or target == order.status or order.status == S.NEEDS_ATTENTION
            or not can_transition(S(order.status), target)):  # fmt: skip
        record(session, order, step="apply_tracking", attempt=attempt, outcome="package_moved",
               details=details)  # fmt: skip
        return SUCCESS
    move(session, order, target, step="apply_tracking", attempt=attempt, details=details)
    if target == S.DELIVERED:
        tell_customer(session, order, NotificationKind.DELIVERED)
    return SUCCESS


def _shipment_status(session, order_id, location_id, tracker: TrackerStatus) -> None:
    """The shipment's last tracker status, moved forward only."""
    where = [Shipment.order_id == order_id]
    if location_id is not None:
        where.append(Shipment.location_id == location_id)
    shipment = session.scalars(select(Shipment).where(*where)).first()
    if shipment is not None and _rank(tracker.value) > _rank(shipment.tracker_status):
        session.execute(update(Shipment).where(*where).values(tracker_status=tracker.value))


def apply_early_trackers(
    session, order: LockedOrder, code: str, count: int, *, attempt: int
) -> str | None:
    """Apply, in the shipment's own commit, the tracker events that arrived before it:
    the furthest status wins, and each event is marked processed. For an order in one
    package, answers the failure to compensate for when one reported that the parcel
    will not arrive (and none that it was delivered): its refund follows as for a
    failure reported later. For one package of several, its parcel moves (a failure is
    answered the same way, for ``package_failed``)."""
    statuses = claim_early_trackers(session, code, order.id)
    if not statuses:
        return None
    if count > 1:  # each in the order it came: the parcel never moves back
        for status in statuses:
            apply_package_tracking(session, order, code, status, attempt=attempt)
        return None
    furthest = max(statuses, key=lambda s: _rank(s.value))
    failed = next((status for status in statuses if status in TRACKING_FAILURES), None)
    _shipment_status(session, order.id, None, furthest)
    target = TRACKING_TARGETS.get(furthest)
    if target is not None and can_transition(S(order.status), target):
        move(session, order, target, step="apply_tracking", attempt=attempt,
             details={"tracker_status": furthest.value, "early": True})  # fmt: skip
        if target == S.DELIVERED:
            tell_customer(session, order, NotificationKind.DELIVERED)
            return None
    return None if failed is None else f"carrier reported {failed.value}"
