"""Steps 4 and 5: pick and pack (in the payment's commit), then buy a label per package
in the same message (``fulfillment.packages``: one for an order from one location), of
the service the customer paid for (an order placed on a quote's option) or else the
cheapest. A shipment that fails for good is refunded (``pipelines.shipping.failures``);
a service paid for and no longer offered waits for an operator, nothing bought or
refunded. A tracker event that overtook the shipment's commit is applied by that
commit (``pipelines.shipping.tracking``)."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, func, text
from sqlalchemy.dialects.postgresql import insert

from fulfillment.checkpoints import reach
from fulfillment.line_cancellation import remaining
from fulfillment.locks import LOCK_LABEL_PURCHASE, LOCK_TRACKING_CODES
from fulfillment.messages import VOID_LABEL
from fulfillment.models import Fulfillment, Order, Shipment
from fulfillment.packages import Package, label_reference, order_status, packages_of, unshipped
from fulfillment.shipping_options import UNIT_WEIGHT_OZ, parcel_weight_oz
from fulfillment.states import OrderStatus as S
from fulfillment.states import can_transition
from integrations.errors import PermanentProviderError, ServiceNotOffered
from integrations.ports import Label, NotificationKind, Parcel, ShippingService, TrackerStatus
from pipelines import compensation as plans
from pipelines import sql
from pipelines.common import (
    SKIPPED,
    SUCCESS,
    begin,
    entered_here,
    lock_order,
    move,
    order_lines,
    record,
    send_later,
    send_queued_writes,
)
from pipelines.compensation import compensate
from pipelines.deps import Deps
from pipelines.locked_order import LockedOrder
from pipelines.mail.claim import tell_customer
from pipelines.shipping.addresses import address_refused, is_refused_address
from pipelines.shipping.failures import package_not_shipped, service_not_offered, shipping_failed
from pipelines.shipping.labels import NOT_SHIPPING, SHIPPING
from pipelines.shipping.tracking import apply_early_trackers
from pipelines.stock.consumption import consume_stock

#: The parcel packed for an order, once.
_PACKED = (
    insert(Fulfillment).values(order_id=bindparam("b_order"), parcel_weight_oz=bindparam("b_weight"))
    .on_conflict_do_nothing(index_elements=["order_id"])
)  # fmt: skip
#: The label bought for a package, once (at the default location for an order reserved
#: before locations).
_LABEL = insert(Shipment).values(
    {**{column: bindparam(f"b_{column}") for column in (
        "order_id", "shipment_id", "tracking_code", "tracker_id", "label_url", "carrier",
        "service", "tracker_status")},
     "location_id": func.coalesce(bindparam("b_location_id", type_=Shipment.location_id.type),
                                  text("default_location_id()"))}
).on_conflict_do_nothing(index_elements=["order_id", "location_id"])  # fmt: skip


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
    """Buy the label of each package not shipped yet (``fulfillment.packages``: one for
    an order from one location), one purchase and one commit per package, until none is
    left. Each runs under the order's purchase lock (``fulfillment.locks``), not its row
    lock: a duplicate message running at the same time waits and then finds the package
    shipped, while a customer's or an operator's cancel or hold is answered at once and
    the purchase's end settles it (the order re-locked and re-checked; a label for an
    order that no longer ships is voided). Only the run that packed the order in this
    very message buys without looking first: any other (a retry, a message redelivered
    after a worker died mid-purchase, the sweeper) asks the carrier for the shipment an
    earlier try may have bought under the package's reference."""
    first_try = attempt == 1 and entered_here(uuid.UUID(str(order_id)), S.FULFILLING)
    outcome = SKIPPED
    while True:
        step = _ship_next(deps, order_id, attempt=attempt, first_try=first_try)
        if step is None:
            return outcome
        outcome, more = step
        if outcome != SUCCESS or not more:  # the last package's commit knows it was
            return outcome  # (an order in one package costs no read after its label)


def _ship_next(
    deps: Deps, order_id: str, *, attempt: int, first_try: bool
) -> tuple[str, bool] | None:
    """Buy the next package's label: (outcome, whether another package still waits);
    None when no package waits for one."""
    with begin(deps) as session:
        sql.one(session, LOCK_LABEL_PURCHASE, {"order_id": str(order_id)})
        order = sql.one(session, _TO_SHIP, {"b_order": uuid.UUID(str(order_id))})
        if order is None or order.status not in SHIPPING or order.refund_due:
            return None
        packages = packages_of(order.id, order.status, order.stock_state, order.allocation,
                               order.parcels)  # fmt: skip
        waiting = unshipped(packages)
        if packages and not waiting:
            if order.status == S.PARTIALLY_SHIPPED:
                _every_package_left(session, order.id, attempt=attempt)
            return None
        package = waiting[0] if waiting else None  # None: reserved before locations
        units = (
            package.units
            if package
            else sum(q for _, q in remaining(order_lines(session, order.id), order.cancelled_lines))
        )
        reference = label_reference(order_id, package and package.location_id, len(packages))
        ship_from = (order.ship_from or {}).get(str(package.location_id)) if package else None
        try:
            label = deps.carrier.ship(order_id=reference, address=dict(order.shipping_address),
                                      parcel=Parcel(weight_oz=parcel_weight_oz(units)),
                                      service=_paid_for(order), lookup=not first_try,
                                      from_address=ship_from)  # fmt: skip
        except PermanentProviderError as exc:
            failure, refusal = str(exc), exc
        else:
            reach("ship_order.label_bought")
            return _keep_label(session, order.id, label, package, len(packages), attempt=attempt)
    if isinstance(refusal, ServiceNotOffered):  # paid for: never another in its place
        return service_not_offered(deps, order_id, package, refusal, attempt=attempt), False
    if order.status == S.PARTIALLY_SHIPPED:  # some parcels are on their way: an operator
        return package_not_shipped(deps, order_id, package, failure, attempt=attempt), False
    if is_refused_address(refusal):  # the customer fixes the address; nothing is refunded
        return address_refused(deps, order_id, refusal, step="ship_order",
                               attempt=attempt), False  # fmt: skip
    return shipping_failed(deps, order_id, step="ship_order", attempt=attempt,
                           error=failure), False  # fmt: skip


def _paid_for(order) -> ShippingService | None:
    """The service the customer paid for (an order placed on a quote's option), or None:
    placed without a quote, or on its flat estimate (the cheapest rate is bought)."""
    if order.shipping_carrier and order.shipping_service:
        return ShippingService(order.shipping_carrier, order.shipping_service)
    return None


#: What ``_ship_next`` reads before the purchase (no row lock: see ``ship_order``), with
#: the address each package ships from by location id (the default location's is the
#: carrier's configured ship-from address, as before locations).
_TO_SHIP = text("""
    SELECT o.id, o.status, o.refund_due, o.shipping_address, o.cancelled_lines,
           o.stock_state, o.allocation, o.parcels, o.shipping_carrier, o.shipping_service,
           (SELECT jsonb_object_agg(l.id::text, l.address) FROM locations l
            WHERE NOT l.is_default AND l.id IN (
                SELECT (a->>'location_id')::uuid FROM jsonb_array_elements(o.allocation) a)
           ) AS ship_from
    FROM orders o WHERE o.id = :b_order
""").columns(id=Order.id.type, status=Order.status.type, refund_due=Order.refund_due.type,
             shipping_address=Order.shipping_address.type, ship_from=Order.shipping_address.type,
             cancelled_lines=Order.cancelled_lines.type, stock_state=Order.stock_state.type,
             allocation=Order.allocation.type, parcels=Order.parcels.type,
             shipping_carrier=Order.shipping_carrier.type,
             shipping_service=Order.shipping_service.type)  # fmt: skip


def _keep_label(
    session, order_id, label: Label, package: Package | None, count: int, *, attempt: int
) -> tuple[str, bool]:
    """The purchase's commit: the tracking code locked first (its tracker events and
    this commit take turns), then the order; the package shipped if the order still
    waits for it, and the order ``shipped`` once every package has (else
    ``partially_shipped``). Answers (outcome, whether another package still waits)."""
    sql.one(session, LOCK_TRACKING_CODES, {"codes": [label.tracking_code]})
    order = lock_order(session, order_id)
    if order is None:
        return SKIPPED, False
    location = None if package is None else str(package.location_id)
    if order.status not in SHIPPING or order.refund_due or location in (order.parcels or {}):
        _label_not_used(session, order, label, attempt=attempt)
        return SKIPPED, False
    _store_label(session, order, label, location)
    if location is not None:
        order.parcels = {**(order.parcels or {}), location: {
            "carrier": label.carrier, "tracking_code": label.tracking_code,
            "shipment_id": label.shipment_id, "status": "shipped"}}  # fmt: skip
    if order.capture_method == "manual" and order.amount_captured == 0 and not order.capture_due:
        order.capture_due = True  # the first parcel captures (pipelines.payments.capture)
    packages = packages_of(order.id, order.status, order.stock_state, order.allocation,
                           order.parcels)  # fmt: skip
    target = order_status(packages) or S.SHIPPED
    details = {"tracking_code": label.tracking_code, "carrier": label.carrier}
    if count > 1:
        details["package"] = {"id": str(package.id), "location_id": location}
    if order.shipped_at is None:
        order.shipped_at = session.info["now"]()
    if target != order.status and can_transition(S(order.status), target):
        move(session, order, target, step="ship_order", attempt=attempt, details=details)
    else:  # another package of several, with more to come
        record(session, order, step="ship_order", attempt=attempt, outcome="package_shipped",
               details=details)  # fmt: skip
    # the address as shipped (a change waits for the purchase to end: see
    # api.orders.addresses), and the shipment, so the mail needs no read of its own
    tell_customer(session, order, NotificationKind.SHIPPED,
                  once_per=str(package.id) if count > 1 else None,
                  tracking_code=label.tracking_code, carrier=label.carrier,
                  shipping_address=dict(order.shipping_address),
                  **(_parcel_counts(packages, package) if count > 1 else {}))  # fmt: skip
    failure = apply_early_trackers(session, order, label.tracking_code, count, attempt=attempt)
    consume_stock(session, order, location)
    if failure is not None:  # after the stock left with the parcel, as for a late failure
        send_queued_writes(session)  # its inventory rows before any the compensation takes
        compensate(session, order, plans.shipping_failed(error=failure), step="apply_tracking",
                   attempt=attempt)  # fmt: skip
    reach("ship_order.before_commit")
    return SUCCESS, bool(unshipped(packages))


def _every_package_left(session, order_id, *, attempt: int) -> None:
    """No package waits any more (the last one's lines were cancelled after others had
    left): the order, re-read under its row lock, goes where its parcels stand."""
    order = lock_order(session, order_id)
    if order is None or order.status != S.PARTIALLY_SHIPPED:
        return
    target = order_status(packages_of(order.id, order.status, order.stock_state,
                                      order.allocation, order.parcels))  # fmt: skip
    if target is None or target == order.status or not can_transition(S(order.status), target):
        return
    move(session, order, target, step="ship_order", attempt=attempt,
         details={"packages": "every package has left"})  # fmt: skip
    if target == S.DELIVERED:
        tell_customer(session, order, NotificationKind.DELIVERED)


def _parcel_counts(packages: list[Package], package: Package) -> dict[str, int | bool]:
    """What the shipped mail of one package of several says: "2 of 3 items have shipped"."""
    live = [p for p in packages if p.status != "cancelled"]
    total, shipped = sum(p.units for p in live), sum(p.units for p in live if p.parcel)
    return {"package_units": package.units, "item_count": total, "shipped_units": shipped,
            "packages_total": len(live), "rest_to_follow": shipped < total}  # fmt: skip


def _label_not_used(session, order: LockedOrder, label: Label, *, attempt: int) -> None:
    """The order moved on while its label was bought (cancelled, held, refunded). The
    label is not stored: a release or resume ships it (the carrier finds it by the
    package's reference), and an order that will not ship gets ``void_label`` again from
    this commit, as the cancel's own may have run before EasyPost sold the label."""
    record(session, order, step="ship_order", attempt=attempt, outcome="label_not_used",
           details={"shipment_id": label.shipment_id, "tracking_code": label.tracking_code})  # fmt: skip
    if order.refund_due or S(order.status) in NOT_SHIPPING:
        send_later(session, VOID_LABEL, order_id=order.id)


def _store_label(session, order: LockedOrder, label: Label, location: str | None) -> None:
    sql.run(session, _LABEL, {
        "b_order_id": order.id, "b_location_id": uuid.UUID(location) if location else None, "b_shipment_id": label.shipment_id,
        "b_tracking_code": label.tracking_code, "b_tracker_id": label.tracker_id,
        "b_label_url": label.label_url, "b_carrier": label.carrier, "b_service": label.service,
        "b_tracker_status": TrackerStatus.PRE_TRANSIT.value,
    })  # fmt: skip
