"""Which locations an order's stock is taken from: a pure plan, made under the inventory
rows' locks by the reservation (``pipelines.stock.reservation``) and then carried out
with one conditional UPDATE per (product, location).

Two strategies (``ALLOCATION_STRATEGY``):

- ``fewest_packages`` (the default): one eligible location that holds the whole order
  wins, ties by priority; otherwise the fewest locations that hold it together, the
  set whose locations rank first winning ties; within the set each product is taken
  from its locations in priority order.
- ``priority``: each product is taken from the eligible locations in priority order,
  a line split across locations where one does not hold it all.

Eligible: active, and shipping to the order's country (``ships_to`` empty: everywhere).
Quantities are per product: two lines of one product need their sum.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["fewest_packages", "priority"]
STRATEGIES: tuple[Strategy, ...] = ("fewest_packages", "priority")
#: Up to this many eligible locations every set is tried (2^12 sets at most, each a few
#: additions); beyond it the fewest-packages plan picks greedily, the location that
#: holds the most of what is still needed first.
EXHAUSTIVE_UP_TO = 12


@dataclass(frozen=True, slots=True)
class Place:
    """A location as the plan sees it."""

    id: uuid.UUID
    priority: int
    ships_to: tuple[str, ...]

    def ships(self, country: str) -> bool:
        return not self.ships_to or country.upper() in self.ships_to


Plan = dict[tuple[uuid.UUID, uuid.UUID], int]


class Short(Exception):
    """The eligible locations together hold less than the order needs of ``product_id``."""

    def __init__(self, product_id: uuid.UUID) -> None:
        super().__init__(f"not enough of {product_id} at the locations that ship there")
        self.product_id = product_id


def needed(lines: Iterable[tuple[uuid.UUID, int]]) -> dict[uuid.UUID, int]:
    """Units per product, two lines of one product summed, in product order."""
    need: dict[uuid.UUID, int] = {}
    for product_id, quantity in lines:
        need[product_id] = need.get(product_id, 0) + quantity
    return dict(sorted(need.items(), key=lambda kv: str(kv[0])))


def eligible(places: Iterable[Place], country: str) -> list[Place]:
    """The active locations (the caller reads only those) shipping to ``country``, by
    priority then id: the order every strategy ranks them in."""
    return sorted((p for p in places if p.ships(country)), key=lambda p: (p.priority, str(p.id)))


def allocate(
    need: Mapping[uuid.UUID, int],
    places: Sequence[Place],
    available: Mapping[tuple[uuid.UUID, uuid.UUID], int],
    strategy: Strategy = "fewest_packages",
) -> Plan:
    """Units to take per (product, location), or ``Short`` for the first product the
    eligible ``places`` (ranked) cannot cover. ``available`` is on hand minus reserved
    per (product, location); a missing or negative entry holds nothing."""
    for product_id, quantity in need.items():
        if sum(_free(available, product_id, p) for p in places) < quantity:
            raise Short(product_id)
    if strategy == "priority":
        return _fill(need, places, available)
    return _fill(need, _fewest(need, places, available), available)


def _free(available: Mapping[tuple[uuid.UUID, uuid.UUID], int], product_id, place: Place) -> int:
    return max(available.get((product_id, place.id), 0), 0)


def _covers(need, places, available) -> bool:
    return all(sum(_free(available, product, p) for p in places) >= quantity
               for product, quantity in need.items())  # fmt: skip


def _fewest(need, places: Sequence[Place], available) -> Sequence[Place]:
    """The fewest places that hold ``need`` together (they do, all of them: checked)."""
    if len(places) <= EXHAUSTIVE_UP_TO:
        for size in range(1, len(places) + 1):
            for chosen in itertools.combinations(places, size):  # in rank order
                if _covers(need, chosen, available):
                    return chosen
    remaining = dict(need)
    chosen: list[Place] = []
    while any(remaining.values()):
        best = max((p for p in places if p not in chosen),
                   key=lambda p: sum(min(_free(available, product, p), left)
                                     for product, left in remaining.items()))  # fmt: skip
        chosen.append(best)
        for product, left in remaining.items():
            remaining[product] = left - min(_free(available, product, best), left)
    return sorted(chosen, key=lambda p: (p.priority, str(p.id)))


def _fill(need, places: Sequence[Place], available) -> Plan:
    plan: Plan = {}
    for product_id, quantity in need.items():
        left = quantity
        for place in places:
            take = min(_free(available, product_id, place), left)
            if take:
                plan[(product_id, place.id)] = take
                left -= take
            if not left:
                break
    return plan
