"""The sandbox's Stripe Tax rates and rounding: the rate by country and US state, whether
shipping is taxed, the tax on an amount rounded half up, and the addresses it refuses.
Pure functions, no I/O."""

from __future__ import annotations

import pytest

from sandbox.stripe.tax import rate_for, tax_location, tax_on
from sandbox.stripe.wire import StripeFailure


@pytest.mark.parametrize(
    ("country", "state", "percentage", "shipping_taxable"),
    [
        ("US", "CA", "7.25", False),
        ("US", "NY", "8.875", True),
        ("US", "TX", "6.25", True),
        ("US", "WA", "10.25", True),
        ("US", "OR", "0.0", False),
        ("US", "IL", "5.0", False),
        ("US", "ny", "8.875", True),
        ("DE", None, "19.0", True),
        ("FR", None, "20.0", True),
        ("GB", None, "20.0", True),
        ("NL", None, "21.0", True),
        ("JP", None, "0.0", False),
    ],
)
def test_the_rate_by_country_and_us_state(country, state, percentage, shipping_taxable):
    rate = rate_for(country, state)
    assert (rate.percentage, rate.shipping_taxable) == (percentage, shipping_taxable)


def test_value_added_taxes_are_vat_and_a_state_without_tax_says_why():
    assert rate_for("DE", None).tax_type == "vat"
    assert rate_for("US", "NY").tax_type == "sales_tax"
    assert rate_for("US", "OR").taxability_reason == "not_subject_to_tax"
    assert rate_for("JP", None).taxability_reason == "not_collecting"


@pytest.mark.parametrize(
    ("amount", "country", "state", "tax"),
    [
        (2500, "US", "NY", 222),  # 221.875
        (800, "US", "NY", 71),  # 71.0
        (200, "US", "CA", 15),  # 14.5: half up
        (100, "US", "TX", 6),  # 6.25
        (10, "US", "IL", 1),  # 0.5: half up
        (9, "US", "IL", 0),  # 0.45
        (599, "DE", None, 114),  # 113.81
        (1000, "US", "OR", 0),
        (0, "US", "NY", 0),
    ],
)
def test_the_tax_on_an_amount_is_rounded_half_up(amount, country, state, tax):
    assert tax_on(amount, rate_for(country, state)) == tax


def test_an_address_gives_its_country_and_state_in_capitals():
    address = {"address": {"country": "us", "state": "ny", "postal_code": "10118"}}
    assert tax_location(address) == ("US", "NY")
    assert tax_location({"address": {"country": "DE"}}) == ("DE", None)


@pytest.mark.parametrize(
    "details",
    [
        None,
        {},
        {"address": {}},
        {"address": {"country": ""}},
        {"address": {"country": "USA", "state": "NY"}},
        {"address": {"country": "U1", "state": "NY"}},
        {"address": {"country": "US"}},
        {"address": {"country": "US", "state": ""}},
    ],
)
def test_an_address_the_tax_cannot_be_placed_at_is_refused_as_stripe_does(details):
    with pytest.raises(StripeFailure) as refused:
        tax_location(details)
    error = refused.value.body["error"]
    assert refused.value.status == 400
    assert (error["type"], error["code"]) == (
        "invalid_request_error",
        "customer_tax_location_invalid",
    )
