"""Stock at several locations, through the real steps on a real PostgreSQL: each order's
stock is taken where it is, given back and shipped from where it was taken, and the
peers' bugs cannot happen here (checked against their trackers):

- Medusa #14987/#15132/#10561: the summed stock check passed, then the order failed or
  oversold at ``location_ids[0]``;
- Medusa #16502: two lines of one item oversold;
- Medusa #16338: a fulfillment consumed stock at a location other than the reserved one;
- Saleor #17170: one warehouse out of stock (or negative) failed the order everywhere;
- Saleor #17657: several allocations on one stock row updated only the last;
- Magento MSI inventory#2727: oversell with several sources and concurrent checkouts.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.db import create_sync_db_engine
from fulfillment.models import Order
from fulfillment.states import OrderStatus as S
from pipelines.actors import run_steps
from pipelines.common import FAILED, SUCCESS
from pipelines.stock.reservation import reserve_inventory
from tests.support.locations import (
    at,
    default_location,
    new_location,
    product_at,
    shipped_from,
    stock_violations,
)
from tests.support.steps import (
    advance,
    in_threads,
    make_deps,
    new_customer,
    order,
    place_orders,
    redelivered,
    status,
    stock,
)

US = {"name": "Grace Hopper", "line1": "1 Main St", "city": "Arlington", "state": "VA",
      "postal_code": "22201", "country": "US"}  # fmt: skip


def held(engine, order_id) -> dict[tuple[str, str], int]:
    return {(a["product_id"], a["location_id"]): a["quantity"]
            for a in order(engine, order_id).allocation}  # fmt: skip


def test_an_order_that_fits_one_location_is_taken_whole_from_it(deps, engine):
    # Given a better-ranked location holding part of the order and another holding all of it
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 1, second: 5})
    cup = product_at(engine, {first: 0, second: 5})
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 2), (cup, 1))

    # When it is reserved
    assert reserve_inventory(deps, order_id) == SUCCESS

    # Then all of it comes from the one location that holds it, none from the other
    assert held(engine, order_id) == {(str(mug), str(second)): 2, (str(cup), str(second)): 1}
    assert at(engine, mug, second) == (5, 2) and at(engine, cup, second) == (5, 1)
    assert at(engine, mug, first) == (1, 0)
    assert stock_violations(engine) == []


def test_stock_no_single_location_holds_is_split_and_shipped_from_where_it_was_taken(deps, engine):
    # Given 2 units at each of two locations and an order for 4 (the summed check passes,
    # no single location could give them)
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 2, second: 2})
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 4))

    # When it is reserved and then shipped
    assert reserve_inventory(deps, order_id) == SUCCESS
    assert at(engine, mug, first) == (2, 2) and at(engine, mug, second) == (2, 2)
    advance(deps, order_id, to=S.SHIPPED)

    # Then each location gave its two, and the ledger says so, location by location
    assert at(engine, mug, first) == (0, 0) and at(engine, mug, second) == (0, 0)
    assert shipped_from(engine, mug) == {first: 2, second: 2}
    assert stock_violations(engine) == []


def test_two_lines_of_one_product_cannot_exist_and_a_quantity_is_checked_whole(deps, engine):
    # Given 3 units at one location
    only = new_location(engine, priority=1)
    mug = product_at(engine, {only: 3})

    # Then an order cannot hold two lines of it (the API refuses them too: 422), so no
    # two checks of one product can each pass alone
    with pytest.raises(IntegrityError, match="uq_order_lines_product"):
        place_orders(engine, new_customer(engine), (mug, 2), (mug, 2))

    # And an order for 4 is refused whole, the 3 untouched
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 4))
    assert reserve_inventory(deps, order_id) == FAILED and status(engine, order_id) == S.REJECTED
    assert at(engine, mug, only) == (3, 0)
    # while with one more unit elsewhere the 4 are reserved together, once
    cup = product_at(engine, {only: 3, default_location(engine): 1})
    (second,) = place_orders(engine, new_customer(engine), (cup, 4))
    assert reserve_inventory(deps, second) == SUCCESS
    assert held(engine, second) == {(str(cup), str(default_location(engine))): 1,
                                    (str(cup), str(only)): 3}  # fmt: skip
    assert stock(engine, cup) == (4, 4)
    assert stock_violations(engine) == []


def test_a_location_with_nothing_available_stands_aside_for_the_one_that_has_it(deps, engine):
    # Given the best-ranked location's units all reserved by another order, and a second
    # location with stock
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 2, second: 3})
    customer = new_customer(engine)
    (earlier,) = place_orders(engine, customer, (mug, 2))
    assert reserve_inventory(deps, earlier) == SUCCESS
    assert at(engine, mug, first) == (2, 2)

    # When the next order for that product is reserved
    (order_id,) = place_orders(engine, customer, (mug, 3))
    assert reserve_inventory(deps, order_id) == SUCCESS

    # Then it is taken from the second location, and nothing went below zero anywhere
    assert held(engine, order_id) == {(str(mug), str(second)): 3}
    assert at(engine, mug, first) == (2, 2) and at(engine, mug, second) == (3, 3)
    assert stock_violations(engine) == []


def test_locations_that_do_not_ship_to_the_address_or_are_inactive_give_nothing(deps, engine):
    # Given stock at a location shipping only to Germany, at an inactive one, and 1 unit
    # at the default location; an order for 2 to Britain
    germany = new_location(engine, priority=1, ships_to=["DE"])
    closed = new_location(engine, priority=2, active=False)
    mug = product_at(engine, {germany: 10, closed: 10, default_location(engine): 1})
    customer = new_customer(engine)
    (to_britain,) = place_orders(engine, customer, (mug, 2))

    # When it is reserved, it is refused: nothing that may ship it holds 2
    assert reserve_inventory(deps, to_britain) == FAILED
    assert stock(engine, mug) == (21, 0)

    # And the same order to Germany is taken from the German location
    (to_germany,) = place_orders(engine, customer, (mug, 2),
                                 address={**US, "country": "DE", "state": ""})  # fmt: skip
    assert reserve_inventory(deps, to_germany) == SUCCESS
    assert held(engine, to_germany) == {(str(mug), str(germany)): 2}
    assert at(engine, mug, closed) == (10, 0)


def test_orders_in_one_pass_at_one_location_each_take_their_units(deps, engine):
    # Given three pending orders for 3 of one product, 5 units at one location and 4 at
    # another, all reserved by one pass
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 5, second: 4})
    orders = place_orders(engine, new_customer(engine), (mug, 3), count=3)

    # When the first order's message runs (the pass takes the others waiting)
    assert reserve_inventory(deps, orders[0]) == SUCCESS

    # Then every order holds its 3 (the first from the first location, the second from
    # the second, the last split), and each row holds the sum of its orders, not the last
    assert {status(engine, oid) for oid in orders} == {S.RESERVED}
    assert [sum(held(engine, oid).values()) for oid in orders] == [3, 3, 3]
    assert at(engine, mug, first) == (5, 5) and at(engine, mug, second) == (4, 4)
    assert stock_violations(engine) == []


def test_a_declined_card_gives_the_stock_back_where_it_was_taken(deps, engine):
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 1, second: 5})
    (order_id,) = place_orders(engine, new_customer(engine), (mug, 3),
                               payment_method="pm_card_chargeDeclined")  # fmt: skip
    assert reserve_inventory(deps, order_id) == SUCCESS
    assert at(engine, mug, second) == (5, 3)

    run_steps(deps, m.REQUEST_PAYMENT, order_id=order_id)

    assert status(engine, order_id) == S.CANCELLED
    assert at(engine, mug, first) == (1, 0) and at(engine, mug, second) == (5, 0)
    assert stock_violations(engine) == []


def test_an_order_reserved_before_locations_is_released_and_shipped_at_the_default(deps, engine):
    # Given two orders holding stock as code older than locations left them: reserved,
    # with no allocation written (the default location holds their units)
    mug = product_at(engine, {default_location(engine): 10})
    declined, shipped = (
        place_orders(engine, new_customer(engine), (mug, 2), payment_method=method)[0]
        for method in ("pm_card_chargeDeclined", "pm_card_visa")
    )
    assert reserve_inventory(deps, declined) == SUCCESS  # (the pass takes both)
    assert {status(engine, declined), status(engine, shipped)} == {S.RESERVED}
    with Session(engine) as session, session.begin():
        session.execute(update(Order).values(allocation=[]))
    assert stock_violations(engine) == []

    # When one is declined and the other ships
    run_steps(deps, m.REQUEST_PAYMENT, order_id=declined)
    advance(deps, shipped, to=S.SHIPPED)

    # Then the default location gave the units back and shipped the others
    assert at(engine, mug, default_location(engine)) == (8, 0)
    assert shipped_from(engine, mug) == {default_location(engine): 2}
    assert stock_violations(engine) == []


def test_verify_names_the_location_whose_stock_does_not_match_its_ledger(deps, engine):
    first, second = new_location(engine, priority=1), new_location(engine, priority=2)
    mug = product_at(engine, {first: 3, second: 3})
    assert stock_violations(engine) == []

    # When a unit's ledger entry is written at the wrong location (the sums still agree)
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE stock_movements SET location_id = :to "
                             "WHERE location_id = :from AND product_id = :p"),
                        {"to": str(first), "from": str(second), "p": str(mug)})  # fmt: skip

    # Then verify says which location is wrong, and how
    violations = stock_violations(engine)
    assert any(f"at location {first}: on hand 3, ledger says 6" in v for v in violations)
    assert any(f"at location {second}: on hand 3, ledger says 0" in v for v in violations)


def test_200_concurrent_orders_over_two_locations_sell_every_unit_once_where_it_was(
    settings, payments, mailer, carrier, db
):
    # Given 150 units at one location, 100 at another, 50 at a third that ships only to
    # Germany, and 200 orders to Britain for exactly 250 units: 150 of one unit, 50 of two
    engine = create_sync_db_engine(settings, pool_size=20)
    try:
        deps = make_deps(engine, settings, payments, mailer, carrier)
        first, second = new_location(engine, priority=1), new_location(engine, priority=2)
        germany = new_location(engine, priority=0, ships_to=["DE"])
        mug = product_at(engine, {first: 150, second: 100, germany: 50})
        customer = new_customer(engine)
        orders = place_orders(engine, customer, (mug, 1), count=150)
        orders += place_orders(engine, customer, (mug, 2), count=50)

        # When all 200 are reserved at once, each on its own thread, and one more comes after
        in_threads([lambda oid=oid: redelivered(deps, oid) for oid in orders])
        (late,) = place_orders(engine, customer, (mug, 1))
        assert reserve_inventory(deps, late) == FAILED

        # Then every unit at the two locations shipping to Britain is reserved once, none
        # beyond what each held, none from Germany
        assert Counter(status(engine, oid) for oid in orders) == {S.RESERVED: 200}
        assert at(engine, mug, first) == (150, 150) and at(engine, mug, second) == (100, 100)
        assert at(engine, mug, germany) == (50, 0)
        assert stock_violations(engine) == []

        # And when they all ship, 8 at a time, each location gives exactly what it held
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda oid: advance(deps, oid, to=S.SHIPPED), orders))
        assert Counter(status(engine, oid) for oid in orders) == {S.SHIPPED: 200}
        assert shipped_from(engine, mug) == {first: 150, second: 100}
        assert at(engine, mug, first) == (0, 0) and at(engine, mug, second) == (0, 0)
        assert stock_violations(engine) == []
    finally:
        engine.dispose()
