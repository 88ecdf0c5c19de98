"""The reservation step on a real PostgreSQL, with in-memory providers: it reserves once
however often its message runs, never oversells under 200 concurrent orders, and
settles every waiting pending order in one pass, each all or nothing."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.db import create_sync_db_engine
from fulfillment.models import Notification, OrderEvent
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SKIPPED, SUCCESS
from pipelines.stock.reservation import reserve_inventory
from tests.support.steps import (
    DEADLINE,
    DELIVERIES,
    given_order,
    in_threads,
    make_deps,
    new_customer,
    new_product,
    notification_of,
    order,
    outbox,
    place_orders,
    redelivered,
    status,
    stock,
    transitions,
    transitions_counted,
)


@DELIVERIES
def test_reserve_inventory_reserves_once(deps, engine, payments, run):
    # Given a pending order for 2 units of a product with 5 on hand
    order_id, product = given_order(deps, engine, at=S.PENDING)

    # When its reservation step runs more than once
    outcomes = run(lambda: reserve_inventory(deps, order_id))

    # Then 2 units are reserved, once
    assert outcomes.count(SUCCESS) == 1
    assert status(engine, order_id) == S.RESERVED
    assert stock(engine, product) == (5, 2)
    assert transitions(engine, order_id, S.RESERVED) == 1
    # and no message is queued for the payment: the same message charges the card next,
    # and the step on its own charges nothing
    assert outbox(engine, m.REQUEST_PAYMENT, order_id=order_id) == 0
    assert payments.calls["charge"] == 0


def test_200_concurrent_orders_for_50_units_reserve_exactly_50(
    settings, db, payments, mailer, carrier
):
    # Given 50 units of a product and 200 pending orders for one unit each
    engine = create_sync_db_engine(settings, pool_size=20)
    try:
        deps = make_deps(engine, settings, payments, mailer, carrier)
        product = new_product(engine, on_hand=50)
        orders = place_orders(engine, new_customer(engine), (product, 1), count=200)
        seen_available: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                on_hand, reserved = stock(engine, product)
                seen_available.append(on_hand - reserved)

        watcher = threading.Thread(target=watch)
        watcher.start()

        # When all 200 are reserved at once, on 200 threads
        try:
            outcomes = in_threads([lambda oid=oid: redelivered(deps, oid) for oid in orders])
        finally:
            done.set()
            watcher.join(timeout=DEADLINE)

        # Then exactly 50 are reserved and 150 rejected, and stock never went below zero
        # (a message whose order another pass took reports it skipped)
        counted = Counter(outcomes)
        assert set(counted) <= {SUCCESS, FAILED, SKIPPED} and counted.total() == 200
        assert counted[SUCCESS] <= 50 and counted[FAILED] <= 150
        assert Counter(status(engine, oid) for oid in orders) == {S.RESERVED: 50, S.REJECTED: 150}
        assert stock(engine, product) == (50, 50)
        assert seen_available and min(seen_available) >= 0
        # and the 150 customers turned away were each told once, at once
        with Session(engine) as session:
            kinds = session.execute(select(Notification.kind, Notification.status)).all()
        assert Counter(map(tuple, kinds)) == {("cancelled", "sent"): 150}
        assert Counter(mailer.kinds()) == {"cancelled": 150}
        assert len({mail.order_id for mail in mailer.sent}) == 150
        # and no message was queued: each reserving message goes on to charge by itself
        assert outbox(engine, m.REQUEST_PAYMENT) == 0 and outbox(engine, m.SEND_NOTIFICATION) == 0
    finally:
        engine.dispose()


def test_an_order_short_on_its_second_line_reserves_nothing(deps, engine):
    # Given plenty of one product and too little of another that is reserved after it
    plenty_id, short_id = sorted([uuid.uuid4(), uuid.uuid4()])
    plenty = new_product(engine, on_hand=10, product_id=plenty_id)
    short = new_product(engine, on_hand=1, product_id=short_id)
    (order_id,) = place_orders(engine, new_customer(engine), (plenty, 3), (short, 2))

    # When the order is reserved
    reserved_before = transitions_counted("pending", "reserved")
    outcome = reserve_inventory(deps, order_id)

    # Then it is rejected and the first line's stock is untouched
    assert outcome == FAILED
    assert status(engine, order_id) == S.REJECTED
    assert stock(engine, plenty) == (10, 0)
    assert stock(engine, short) == (1, 0)
    assert order(engine, order_id).stock_state == "none"
    assert order(engine, order_id).reserved_until is None
    # and the timeline and the metrics show no reservation that was rolled back
    with Session(engine) as session:
        steps = session.execute(
            select(OrderEvent.from_status, OrderEvent.to_status)
            .where(OrderEvent.order_id == uuid.UUID(order_id)).order_by(OrderEvent.id)
        ).all()  # fmt: skip
    assert [tuple(row) for row in steps] == [(None, "pending"), ("pending", "rejected")]
    assert transitions_counted("pending", "reserved") == reserved_before
    assert notification_of(engine, order_id, "cancelled").data == {"reason": "out_of_stock"}
    assert outbox(engine, m.REQUEST_PAYMENT, order_id=order_id) == 0


def test_one_reservation_pass_takes_every_pending_order_waiting_each_all_or_nothing(deps, engine):
    # Given 3 units, and three pending orders of 2, 1 and 2 units, the oldest first
    product = new_product(engine, on_hand=3)
    customer = new_customer(engine)
    first, second, third = (place_orders(engine, customer, (product, qty))[0] for qty in (2, 1, 2))

    # When the first order's message reserves
    assert reserve_inventory(deps, first) == SUCCESS

    # Then that one call (one transaction) settled all three, oldest first, each whole
    # or not at all
    assert [status(engine, o) for o in (first, second, third)] == [S.RESERVED, S.RESERVED,
                                                                   S.REJECTED]  # fmt: skip
    assert stock(engine, product) == (3, 3)
    # and the other orders' own messages find their work done and go on to charge
    assert reserve_inventory(deps, second) == SKIPPED
    assert run_steps(deps, m.RESERVE_INVENTORY, order_id=second) == SUCCESS
    assert status(engine, second) == S.SHIPPED
