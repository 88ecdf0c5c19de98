"""An order taken from two locations ships as two parcels, through the real steps on a
real PostgreSQL: a label per package, bought from its own location under its own
reference, each package's stock leaving its own location with its parcel, one capture
for the whole amount at the first parcel, the order ``partially_shipped`` while one
waits, ``partially_delivered`` while one travels, and a parcel that will not arrive
refunded by its own lines. Peers shipped wrong quantities after a partial shipment
(Magento MSI #1913, #1728) and captured twice (one capture per shipment)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import Notification, Order, Refund, Shipment
from fulfillment.order_view import order_out
from fulfillment.packages import package_id
from fulfillment.states import OrderStatus as S
from integrations.errors import ServiceNotOffered
from integrations.ports import TrackerStatus as T
from pipelines.actors import run_steps
from pipelines.common import FAILED, SUCCESS, begin, lock_order
from pipelines.compensation import compensate, customer_cancel
from pipelines.operations.attention import resume
from pipelines.shipping.labels import void_label
from pipelines.shipping.tracking import apply_tracking
from tests.support.fakes import transient
from tests.support.locations import at, new_location, product_at, shipped_from, stock_violations
from tests.support.steps import make_deps, new_customer, order, place_orders, status, transitions


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier):
    """Capture at shipment (the default): the first parcel captures."""
    return make_deps(engine, settings, payments, mailer, carrier)


def split_order(engine) -> tuple[str, uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """An order for 3 mugs and 1 cup: the mugs at one location, the cup at another."""
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 3})
    cup = product_at(engine, {second: 1}, price="8.00")
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 3), (cup, 1))
    return order_id, first, second, mug, cup


def shipments(engine, order_id: str) -> dict[uuid.UUID, Shipment]:
    with Session(engine) as session:
        rows = session.scalars(select(Shipment).where(Shipment.order_id == uuid.UUID(order_id)))
        return {row.location_id: row for row in rows}


def shipped_mails(engine, mailer, order_id: str) -> list[dict]:
    with Session(engine) as session:
        kinds = session.scalars(select(Notification.kind).where(
            Notification.order_id == uuid.UUID(order_id))).all()  # fmt: skip
    assert kinds.count("shipped") == len([m for m in mailer.sent if m.kind == "shipped"
                                         and m.order_id == order_id])  # fmt: skip
    return [
        mail.data for mail in mailer.sent if mail.kind == "shipped" and mail.order_id == order_id
    ]


def test_two_locations_ship_two_parcels_from_their_own_addresses_captured_once(
    deps, engine, payments, carrier, mailer
):
    # Given an order whose mugs are at one location and whose cup is at another
    order_id, first, second, mug, cup = split_order(engine)

    # When its one message runs
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id) == SUCCESS

    # Then two labels were bought, each under its package's reference, from its location
    assert status(engine, order_id) == S.SHIPPED
    assert transitions(engine, order_id, S.PARTIALLY_SHIPPED) == 1
    assert transitions(engine, order_id, S.SHIPPED) == 1
    assert sorted(carrier.labels) == sorted([f"{order_id}:{first}", f"{order_id}:{second}"])
    assert all(carrier.shipped_from[ref] is not None for ref in carrier.labels)
    kept = shipments(engine, order_id)
    assert set(kept) == {first, second}
    # each location gave its own units, with its own parcel
    assert shipped_from(engine, mug) == {first: 3} and shipped_from(engine, cup) == {second: 1}
    assert at(engine, mug, first) == (0, 0) and at(engine, cup, second) == (0, 0)
    # the card was captured once, for the whole amount, at the first parcel
    placed = order(engine, order_id)
    assert payments.captures == {order_id: 1}
    assert placed.amount_captured == placed.total_amount == 3 * 1250 + 800
    assert placed.stock_state == "consumed" and placed.shipped_at is not None
    # each parcel has its mail, which says how much of the order it is
    counts = sorted((d["package_units"], d["shipped_units"], d["item_count"], d["rest_to_follow"])
                    for d in shipped_mails(engine, mailer, order_id))  # fmt: skip
    assert counts == [(1, 4, 4, False), (3, 3, 4, True)] or counts == [(1, 1, 4, True),
                                                                       (3, 4, 4, False)]  # fmt: skip
    assert {d["tracking_code"] for d in shipped_mails(engine, mailer, order_id)} == {
        s.tracking_code for s in kept.values()}  # fmt: skip
    assert stock_violations(engine) == []


def test_a_second_label_that_fails_leaves_the_order_partially_shipped_and_a_retry_ships_it(
    deps, engine, payments, carrier
):
    # Given a split order whose second label purchase will time out
    order_id, first, second, mug, cup = split_order(engine)
    carrier.fail_next("ship", transient("easypost", "buy_shipment"), after=1)

    # When its message runs, the first parcel leaves and the second does not
    with pytest.raises(Exception, match="service unavailable"):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert status(engine, order_id) == S.PARTIALLY_SHIPPED
    (left,) = shipments(engine, order_id)
    waiting = second if left == first else first
    # the first parcel's stock is gone from its location, the second's is still held
    gone, held = (mug, cup) if left == first else (cup, mug)
    assert shipped_from(engine, gone) == {left: 3 if gone == mug else 1}
    assert at(engine, held, waiting)[1] > 0
    assert stock_violations(engine) == []
    # and the order is captured once already (the next step of the same message)
    assert run_steps(deps, m.CAPTURE_PAYMENT, order_id=order_id) in (SUCCESS, "skipped")
    assert payments.captures == {order_id: 1}
    packages = {p["location_id"]: p["status"] for p in _packages(engine, order_id)}
    assert packages == {str(left): "shipped", str(waiting): "pending"}

    # When the retry comes (a redelivery, the sweeper), twice
    for _ in range(2):
        run_steps(deps, m.SHIP_ORDER, order_id=order_id)

    # Then the second parcel left once, and the order is shipped, captured once
    assert status(engine, order_id) == S.SHIPPED
    assert set(shipments(engine, order_id)) == {first, second}
    assert carrier.labels_bought == 2
    assert payments.captures == {order_id: 1}
    assert order(engine, order_id).stock_state == "consumed"
    assert stock_violations(engine) == []


def test_a_second_package_whose_paid_service_is_withdrawn_waits_for_an_operator(
    deps, engine, payments, carrier
):
    # Given a split order placed on a quote's USPS Priority option, and the carrier
    # withdrawing that service after the first parcel's label
    order_id, *_ = split_order(engine)
    with Session(engine) as session, session.begin():
        placed = session.get(Order, uuid.UUID(order_id))
        placed.shipping_carrier, placed.shipping_service = "USPS", "Priority"
    withdrawn = ServiceNotOffered("USPS", "Priority", offered=["USPS GroundAdvantage"],
                                  provider="easypost", operation="buy_shipment")  # fmt: skip
    carrier.fail_next("ship", withdrawn, after=1)

    # When its message runs
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id) == FAILED

    # Then the first parcel left as paid for, and the order waits for an operator with
    # the reason, naming the package; nothing is refunded
    (label,) = carrier.labels.values()
    assert (label.carrier, label.service) == ("USPS", "Priority")
    stopped = order(engine, order_id)
    assert (stopped.status, stopped.attention_from) == (S.NEEDS_ATTENTION, S.PARTIALLY_SHIPPED)
    assert stopped.last_error.startswith("USPS Priority is no longer offered for this parcel")
    assert payments.refunds == {} and not stopped.refund_due

    # When an operator resumes it once the service is offered again
    assert resume(deps, order_id) == S.PARTIALLY_SHIPPED
    assert run_steps(deps, m.SHIP_ORDER, order_id=order_id) == SUCCESS

    # Then the second parcel leaves with the service paid for
    assert status(engine, order_id) == S.SHIPPED
    assert {(lb.carrier, lb.service) for lb in carrier.labels.values()} == {("USPS", "Priority")}
    assert carrier.labels_bought == 2


def _packages(engine, order_id: str) -> list[dict]:
    with Session(engine) as session:
        found = session.get(Order, uuid.UUID(order_id))
        session.refresh(found, ["lines"])
        return [p.model_dump(mode="json") for p in order_out(found).packages]


def test_parcels_arrive_one_by_one_and_the_order_is_delivered_once(deps, engine, mailer):
    # Given a split order shipped as two parcels
    order_id, first, second, *_ = split_order(engine)
    run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    codes = {loc: s.tracking_code for loc, s in shipments(engine, order_id).items()}

    # When the first parcel travels and arrives (its events twice, late ones after)
    for tracker in (T.IN_TRANSIT, T.IN_TRANSIT):
        apply_tracking(deps, order_id, status=tracker.value, code=codes[first])
    assert status(engine, order_id) == S.IN_TRANSIT
    apply_tracking(deps, order_id, status=T.DELIVERED.value, code=codes[first])
    apply_tracking(deps, order_id, status=T.IN_TRANSIT.value, code=codes[first])

    # Then the order is partially delivered, that parcel delivered and the other shipped
    assert status(engine, order_id) == S.PARTIALLY_DELIVERED
    packages = {p["location_id"]: p for p in _packages(engine, order_id)}
    assert packages[str(first)]["status"] == "delivered"
    assert packages[str(second)]["status"] == "shipped"
    assert packages[str(first)]["tracking_code"] == codes[first]
    assert packages[str(first)]["id"] == str(package_id(order_id, first))

    # When the second arrives too (twice)
    for _ in range(2):
        apply_tracking(deps, order_id, status=T.DELIVERED.value, code=codes[second])

    # Then the order is delivered once, with one delivered mail
    assert status(engine, order_id) == S.DELIVERED
    assert transitions(engine, order_id, S.DELIVERED) == 1
    assert [m.kind for m in mailer.sent if m.order_id == order_id].count("delivered") == 1
    assert shipments(engine, order_id)[second].tracker_status == "delivered"


def test_a_parcel_that_will_not_arrive_is_refunded_by_its_lines_and_the_other_goes_on(
    deps, engine, payments
):
    # Given a split order shipped and captured as two parcels
    order_id, first, second, _, cup = split_order(engine)
    run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    codes = {loc: s.tracking_code for loc, s in shipments(engine, order_id).items()}

    # When the carrier returns the cup's parcel to sender (the event twice)
    outcomes = [apply_tracking(deps, order_id, status=T.RETURN_TO_SENDER.value,
                               code=codes[second]) for _ in range(2)]  # fmt: skip

    # Then that parcel's line is refunded, once, and nothing else
    assert outcomes[0] == FAILED
    with Session(engine) as session:
        refunds = session.scalars(
            select(Refund).where(Refund.order_id == uuid.UUID(order_id))
        ).all()
    assert [(r.source, r.amount, [(ln["product_id"], ln["quantity"]) for ln in r.lines])
            for r in refunds] == [("package_failed", 800, [(str(cup), 1)])]  # fmt: skip
    assert status(engine, order_id) == S.SHIPPED
    # and the mugs' parcel still arrives, which ends the order
    apply_tracking(deps, order_id, status=T.DELIVERED.value, code=codes[first])
    assert status(engine, order_id) == S.DELIVERED
    packages = {p["location_id"]: p["status"] for p in _packages(engine, order_id)}
    assert packages == {str(first): "delivered", str(second): "failed"}
    assert payments.captures == {order_id: 1}
    assert stock_violations(engine) == []


def test_a_cancelled_split_order_voids_the_label_each_package_may_have(deps, engine, carrier):
    # Given a split order whose labels were bought but whose commits were lost (the worker
    # died after EasyPost answered), and which was then cancelled
    order_id, *_ = split_order(engine)
    carrier.lose_next("ship", times=2)
    with pytest.raises(Exception, match="service unavailable"):
        run_steps(deps, m.RESERVE_INVENTORY, order_id=order_id)
    assert status(engine, order_id) == S.FULFILLING
    with begin(deps) as session:
        locked = lock_order(session, order_id)
        compensate(session, locked, customer_cancel(locked), step="cancel_order", attempt=1)
    assert status(engine, order_id) == S.CANCELLED

    # When the void message comes (twice)
    void_label(deps, order_id)
    void_label(deps, order_id)

    # Then the one label bought so far (the first package's, under its reference) is
    # voided once, and the other reference was asked for too
    (bought,) = carrier.labels.values()
    assert carrier.voided == [bought.shipment_id]
    assert bought.reference.startswith(f"{order_id}:")
    assert carrier.calls["find_shipment"] == 4
