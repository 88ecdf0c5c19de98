"""Pricing an order from the catalogue. Pure: the caller loads the products.

Prices come from the catalogue, never from the client; each line keeps a snapshot of
the unit price at order time, in the catalogue's decimal and in minor units.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from fulfillment.money import to_minor


@dataclass(frozen=True)
class CatalogueEntry:
    product_id: uuid.UUID
    sku: str
    name: str
    price: Decimal
    currency: str
    active: bool


@dataclass(frozen=True)
class PricedLine:
    position: int
    product_id: uuid.UUID
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    unit_amount: int


@dataclass(frozen=True)
class PricedOrder:
    lines: tuple[PricedLine, ...]
    currency: str
    total_amount: int


class ProductsUnavailable(Exception):
    def __init__(self, product_ids: list[uuid.UUID]) -> None:
        super().__init__("products unknown or not for sale: " + ", ".join(map(str, product_ids)))
        self.product_ids = product_ids


class MixedCurrencies(Exception):
    def __init__(self, currencies: set[str]) -> None:
        super().__init__("one order must be in one currency, got " + ", ".join(sorted(currencies)))
        self.currencies = currencies


def price_order(
    requested: list[tuple[uuid.UUID, int]], catalogue: dict[uuid.UUID, CatalogueEntry]
) -> PricedOrder:
    """``requested`` is (product id, quantity) per line, in the client's order."""
    missing = [pid for pid, _ in requested if pid not in catalogue or not catalogue[pid].active]
    if missing:
        raise ProductsUnavailable(missing)
    currencies = {catalogue[pid].currency for pid, _ in requested}
    if len(currencies) != 1:
        raise MixedCurrencies(currencies)
    currency = currencies.pop()
    lines = []
    for position, (pid, quantity) in enumerate(requested, start=1):
        entry = catalogue[pid]
        lines.append(
            PricedLine(
                position=position,
                product_id=pid,
                sku=entry.sku,
                name=entry.name,
                quantity=quantity,
                unit_price=entry.price,
                unit_amount=to_minor(entry.price, currency),
            )
        )
    total = sum(line.unit_amount * line.quantity for line in lines)
    return PricedOrder(lines=tuple(lines), currency=currency, total_amount=total)
