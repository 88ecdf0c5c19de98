"""The allocation plan (``fulfillment.allocation``): which locations an order's stock is
taken from, by each strategy, and the peers' bugs it is shaped against: an order that
passes a summed check and then fails at one location, two lines of one product, a
location out of stock or negative making the whole catalogue unavailable."""

from __future__ import annotations

import uuid

import pytest

from fulfillment.allocation import EXHAUSTIVE_UP_TO, Place, Short, allocate, eligible, needed

MUG, CUP = sorted([uuid.uuid4(), uuid.uuid4()], key=str)


def place(priority: int, *ships_to: str) -> Place:
    return Place(uuid.uuid4(), priority, tuple(ships_to))


A, B, C = place(1), place(2), place(3)


def units(plan) -> int:
    return sum(plan.values())


def test_one_location_holding_the_whole_order_wins_over_a_better_ranked_partial_one():
    # Given the first-ranked location holds only some of the order, the third all of it
    available = {(MUG, A.id): 5, (CUP, A.id): 0, (MUG, C.id): 5, (CUP, C.id): 5}

    # When it is planned for the fewest packages
    plan = allocate({MUG: 2, CUP: 1}, [A, B, C], available)

    # Then it all comes from the one location that holds it
    assert plan == {(MUG, C.id): 2, (CUP, C.id): 1}


def test_of_two_locations_holding_the_whole_order_the_better_ranked_wins():
    available = {(MUG, A.id): 5, (MUG, B.id): 5}
    assert allocate({MUG: 3}, [A, B], available) == {(MUG, A.id): 3}


def test_no_single_location_holds_it_so_the_fewest_do():
    # Given three locations, none holding both products, and B and C together holding all
    available = {(MUG, A.id): 1, (MUG, B.id): 4, (CUP, C.id): 2, (CUP, A.id): 1}

    # When 4 mugs and 2 cups are planned
    plan = allocate({MUG: 4, CUP: 2}, [A, B, C], available)

    # Then two locations ship it (A alone cannot, and A+B lacks a cup), the better ranked pair
    assert {location for _, location in plan} == {B.id, C.id}
    assert plan == {(MUG, B.id): 4, (CUP, C.id): 2}


def test_priority_fills_each_line_in_rank_order_and_splits_a_line():
    available = {(MUG, A.id): 1, (MUG, B.id): 1, (MUG, C.id): 5}
    plan = allocate({MUG: 3}, [A, B, C], available, "priority")
    assert plan == {(MUG, A.id): 1, (MUG, B.id): 1, (MUG, C.id): 1}
    # while fewest_packages takes the one location that holds all three
    assert allocate({MUG: 3}, [A, B, C], available) == {(MUG, C.id): 3}


def test_a_summed_stock_that_fits_is_split_rather_than_refused():
    # (Medusa #14987: the summed check passes, then the order fails at location_ids[0])
    available = {(MUG, A.id): 2, (MUG, B.id): 2}
    for strategy in ("fewest_packages", "priority"):
        assert allocate({MUG: 4}, [A, B], available, strategy) == {(MUG, A.id): 2, (MUG, B.id): 2}


def test_two_lines_of_one_product_need_their_sum():
    # (Medusa #16502: two lines of one item each checked alone oversold)
    need = needed([(MUG, 2), (CUP, 1), (MUG, 2)])
    assert need == {MUG: 4, CUP: 1}
    with pytest.raises(Short) as short:
        allocate(need, [A], {(MUG, A.id): 3, (CUP, A.id): 5})
    assert short.value.product_id == MUG


def test_a_location_out_of_stock_or_negative_blocks_nothing_else():
    # (Saleor #17170: negative stock at one warehouse failed checkout for the channel)
    available = {(MUG, A.id): -3, (MUG, B.id): 0, (MUG, C.id): 2}
    assert allocate({MUG: 2}, [A, B, C], available) == {(MUG, C.id): 2}
    assert allocate({MUG: 2}, [A, B, C], available, "priority") == {(MUG, C.id): 2}
    # and a negative count is not taken as a debt against the others
    with pytest.raises(Short):
        allocate({MUG: 3}, [A, B, C], available)


def test_locations_not_shipping_to_the_country_are_not_eligible():
    us, eu, anywhere = place(1, "US"), place(2, "DE", "FR"), place(3)
    assert eligible([anywhere, eu, us], "fr") == [eu, anywhere]
    assert eligible([anywhere, eu, us], "US") == [us, anywhere]
    # so the stock of a location that cannot ship there is not counted
    available = {(MUG, us.id): 5, (MUG, anywhere.id): 1}
    with pytest.raises(Short):
        allocate({MUG: 2}, eligible([us, eu, anywhere], "DE"), available)


def test_nothing_eligible_is_short_on_the_first_product():
    with pytest.raises(Short) as short:
        allocate({CUP: 1, MUG: 1}, [], {})
    assert short.value.product_id == CUP


def test_equal_priorities_rank_by_id_so_every_pass_plans_the_same():
    first, second = sorted([place(5), place(5)], key=lambda p: str(p.id))
    assert eligible([second, first], "US") == [first, second]
    available = {(MUG, first.id): 3, (MUG, second.id): 3}
    assert allocate({MUG: 1}, eligible([second, first], "US"), available) == {(MUG, first.id): 1}


def test_beyond_the_exhaustive_limit_the_plan_is_greedy_and_still_covers_the_order():
    # Given more eligible locations than every set can be tried for, each holding a little
    places = [place(i) for i in range(EXHAUSTIVE_UP_TO + 4)]
    available = {(MUG, p.id): 1 for p in places} | {
        (MUG, places[-1].id): 6,
        (CUP, places[-2].id): 2,
    }

    # When 7 mugs and 2 cups are planned
    plan = allocate({MUG: 7, CUP: 2}, places, available)

    # Then the order is covered from the locations holding the most: two, not seven
    assert units(plan) == 9
    assert {location for _, location in plan} == {places[-1].id, places[-2].id}
    assert all(quantity <= max(available[key], 0) for key, quantity in plan.items())
