from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from fulfillment.money import format_decimal, format_minor, from_minor, to_minor
from fulfillment.ordering import (
    CatalogueEntry,
    MixedCurrencies,
    ProductsUnavailable,
    price_order,
)


def entry(price: str, currency: str = "usd", active: bool = True) -> CatalogueEntry:
    pid = uuid.uuid4()
    return CatalogueEntry(pid, f"SKU-{pid.hex[:4]}", "thing", Decimal(price), currency, active)


def test_minor_units_follow_the_currency():
    assert to_minor(Decimal("12.50"), "usd") == 1250
    assert to_minor(Decimal("500"), "jpy") == 500
    assert from_minor(1250, "usd") == Decimal("12.50")
    assert format_decimal(Decimal("7.5"), "eur") == "7.50"
    assert format_decimal(Decimal("500"), "JPY") == "500"


@pytest.mark.parametrize("currency", ["usd", "EUR", "jpy", "KRW"])
def test_minor_amounts_format_as_their_decimals_do(currency):
    amounts = [0, 1, 9, 10, 99, 100, 101, 1250, 123456789012345, -1, -50, -100, -1250]
    for amount in [*amounts, *range(-1000, 1000, 7)]:
        assert format_minor(amount, currency) == format_decimal(
            from_minor(amount, currency), currency
        ), amount


def test_an_order_is_priced_per_line_in_minor_units():
    mug, tea = entry("12.50"), entry("0.10")
    priced = price_order(
        [(mug.product_id, 3), (tea.product_id, 7)], {e.product_id: e for e in (mug, tea)}
    )
    assert priced.total_amount == 3 * 1250 + 7 * 10
    assert [line.position for line in priced.lines] == [1, 2]
    assert priced.lines[0].unit_price == Decimal("12.50") and priced.currency == "usd"


def test_unknown_and_inactive_products_are_named():
    known, retired = entry("1.00"), entry("1.00", active=False)
    ghost = uuid.uuid4()
    catalogue = {e.product_id: e for e in (known, retired)}
    with pytest.raises(ProductsUnavailable) as caught:
        price_order([(known.product_id, 1), (retired.product_id, 1), (ghost, 1)], catalogue)
    assert caught.value.product_ids == [retired.product_id, ghost]


def test_one_order_has_one_currency():
    usd, eur = entry("1.00"), entry("1.00", "eur")
    with pytest.raises(MixedCurrencies):
        price_order(
            [(usd.product_id, 1), (eur.product_id, 1)], {e.product_id: e for e in (usd, eur)}
        )
