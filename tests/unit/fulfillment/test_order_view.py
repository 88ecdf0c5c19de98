"""The placed order's JSON, written by hand for the API's hot path, against the model
every other read of an order uses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from fulfillment.order_view import OrderOut, placed_order_json


def line(price: str, quantity: int = 1) -> SimpleNamespace:
    return SimpleNamespace(product_id=uuid.uuid4(), sku=f"SKU-{price}", name="Mug \u00e9\u6f22",
                           quantity=quantity, unit_price=Decimal(price))  # fmt: skip


CASES = [
    # (currency, lines, shipping, tax, carrier, service, at)
    ("usd", [line("12.50", 3)], 0, 0, None, None, datetime(2026, 12, 7, 0, 22, 54, 910582, UTC)),
    ("eur", [line("0.10", 7), line("7.5")], 499, 231, "USPS", "Priority",
     datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("jpy", [line("500", 2)], 800, 130, "UPS", "Ground", datetime(2026, 6, 1, 12, 0, 0, 1, UTC)),
    ("usd", [], 0, 0, None, None, datetime(2026, 12, 7, tzinfo=timezone(timedelta(0)))),
]  # fmt: skip


@pytest.mark.parametrize(("currency", "lines", "shipping", "tax", "carrier", "service", "at"),
                         CASES)  # fmt: skip
def test_a_placed_order_reads_as_the_model_shows_it(currency, lines, shipping, tax, carrier,
                                                    service, at):  # fmt: skip
    order_id = uuid.uuid4()
    total = sum(int(line.unit_price * (1 if currency == "jpy" else 100)) * line.quantity
                for line in lines) + shipping + tax  # fmt: skip
    address = {"name": "Ada", "line1": "1 Market St", "country": "US"}
    common = dict(id=order_id, lines=lines, currency=currency, total_amount=total,
                  shipping_address=address, shipping_amount=shipping, tax_amount=tax,
                  shipping_carrier=carrier, shipping_service=service)  # fmt: skip
    model = OrderOut.of(status="pending", created_at=at, updated_at=at, **common)
    assert placed_order_json(at=at, **common) == model.model_dump(mode="json")


def test_a_time_that_is_not_utc_is_refused():
    with pytest.raises(ValueError, match="not a UTC time"):
        placed_order_json(id=uuid.uuid4(), lines=[], currency="usd", total_amount=0,
                          shipping_address={}, at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))))  # fmt: skip
