"""An order's packages as its allocation gives them: one per location, ids stable across
reads, a status read from the order's, and a move that merges into the destination."""

from __future__ import annotations

import uuid

from fulfillment.packages import moved, package_id, package_status, packages_of

ORDER = uuid.uuid4()
MUG, CUP = sorted([str(uuid.uuid4()), str(uuid.uuid4())])
HERE, THERE = sorted([str(uuid.uuid4()), str(uuid.uuid4())])
ALLOCATION = [
    {"product_id": MUG, "location_id": HERE, "quantity": 2},
    {"product_id": MUG, "location_id": THERE, "quantity": 1},
    {"product_id": CUP, "location_id": THERE, "quantity": 3},
]


def test_one_package_per_location_with_its_lines_and_a_stable_id():
    packages = packages_of(ORDER, "reserved", "reserved", ALLOCATION)
    assert [(str(p.location_id), p.lines) for p in packages] == [
        (HERE, [{"product_id": MUG, "quantity": 2}]),
        (THERE, sorted([{"product_id": MUG, "quantity": 1}, {"product_id": CUP, "quantity": 3}],
                       key=lambda line: line["product_id"])),
    ]  # fmt: skip
    assert [p.id for p in packages] == [package_id(ORDER, HERE), package_id(ORDER, THERE)]
    assert package_id(ORDER, HERE) == package_id(str(ORDER), uuid.UUID(HERE))
    assert package_id(ORDER, HERE) != package_id(uuid.uuid4(), HERE)
    assert packages_of(ORDER, "pending", "none", []) == []


def test_a_package_is_pending_until_the_parcel_leaves_then_follows_it():
    assert package_status("fulfilling", "reserved") == "pending"
    assert package_status("on_hold", "reserved") == "pending"
    assert [package_status(s, "consumed") for s in ("shipped", "in_transit", "delivered")] == [
        "shipped", "in_transit", "delivered"]  # fmt: skip
    assert package_status("needs_attention", "consumed") == "shipped"
    assert package_status("cancelled", "released") == "cancelled"
    assert package_status("needs_attention", "released") == "cancelled"


def test_a_move_sends_one_locations_units_to_another_merging_what_it_held():
    after = moved(ALLOCATION, uuid.UUID(HERE), uuid.UUID(THERE))
    assert sorted((a["product_id"], a["location_id"], a["quantity"]) for a in after) == sorted(
        [(MUG, THERE, 3), (CUP, THERE, 3)])  # fmt: skip
    assert sum(a["quantity"] for a in after) == sum(a["quantity"] for a in ALLOCATION)
