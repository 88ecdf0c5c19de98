"""A quote's shipping options from the carrier's rates: the merchant's services only,
handling added, free above the threshold, cheapest first; the flat fallback when the
carrier is away, or none."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fulfillment.shipping_options import (
    ShippingRate,
    ShippingUnavailable,
    offered,
    option_id,
    parcel_weight_oz,
    shipping_options,
)

RATES = [
    ShippingRate("UPS", "Ground", 1005, "usd", 3),
    ShippingRate("USPS", "GroundAdvantage", 545, "usd", 5),
    ShippingRate("USPS", "Priority", 845, "usd", 2),
    ShippingRate("FedEx", "FEDEX_2_DAY", 1910, "usd", 2),
]


def test_every_service_cheapest_first_with_handling_added():
    options = shipping_options(RATES, subtotal=2500, currency="usd", handling=Decimal("1.50"))
    assert [(o.id, o.shipping, o.estimated) for o in options] == [
        ("usps_groundadvantage", 695, False), ("usps_priority", 995, False),
        ("ups_ground", 1155, False), ("fedex_fedex_2_day", 2060, False)]  # fmt: skip


def test_only_the_merchants_services_are_offered_whatever_their_spelling():
    picked = offered(RATES, ["usps:priority", "UPS:Ground"])
    assert [(r.carrier, r.service) for r in picked] == [("UPS", "Ground"), ("USPS", "Priority")]
    with pytest.raises(ShippingUnavailable):
        shipping_options(RATES, subtotal=1, currency="usd", services=["DHL:Express"])


def test_an_order_at_the_threshold_ships_free_and_one_below_does_not():
    at = shipping_options(RATES, subtotal=5000, currency="usd", free_over=Decimal("50"),
                          handling=Decimal("1"))  # fmt: skip
    below = shipping_options(RATES, subtotal=4999, currency="usd", free_over=Decimal("50"))
    assert {o.shipping for o in at} == {0}
    assert min(o.shipping for o in below) == 545


def test_a_rate_in_another_currency_is_not_offered():
    options = shipping_options([*RATES[:1], ShippingRate("DHL", "Express", 900, "eur", 1)],
                               subtotal=100, currency="usd")  # fmt: skip
    assert [o.id for o in options] == ["ups_ground"]


def test_the_carrier_away_gives_the_flat_estimate_or_nothing():
    (flat,) = shipping_options(None, subtotal=100, currency="usd", fallback=Decimal("7.00"),
                               handling=Decimal("0.50"))  # fmt: skip
    assert (flat.id, flat.shipping, flat.estimated, flat.delivery_days) == (
        "flat_standard", 750, True, None)  # fmt: skip
    with pytest.raises(ShippingUnavailable):
        shipping_options(None, subtotal=100, currency="usd")


def test_ids_and_weights():
    assert option_id("FedEx", "FEDEX_2_DAY") == "fedex_fedex_2_day"
    assert parcel_weight_oz(3) == 36.0
