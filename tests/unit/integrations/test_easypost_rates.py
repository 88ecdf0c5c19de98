"""The rate a label is bought at, from a shipment as the gateway now reads it (the plain
dict of EasyPost's JSON) and as the SDK's object: the same rate either way, by the
SDK's own ``lowest_rate`` rule."""

from __future__ import annotations

import easypost.errors
import pytest
from easypost.easypost_object import convert_to_easypost_object

from integrations.easypost_wire import pick_rate
from integrations.errors import ServiceNotOffered
from integrations.ports import ShippingService

SHIPMENT = {
    "id": "shp_1",
    "object": "Shipment",
    "rates": [
        {"id": "rate_priority", "object": "Rate", "carrier": "USPS", "service": "Priority",
         "rate": "8.40", "currency": "USD"},
        {"id": "rate_ground", "object": "Rate", "carrier": "USPS", "service": "GroundAdvantage",
         "rate": "5.80", "currency": "USD"},
        {"id": "rate_ups", "object": "Rate", "carrier": "UPS", "service": "Ground",
         "rate": "5.80", "currency": "USD"},
        {"id": "rate_express", "object": "Rate", "carrier": "USPS", "service": "Express",
         "rate": "27.15", "currency": "USD"},
    ],
}  # fmt: skip


@pytest.mark.parametrize("as_object", [False, True], ids=["dict", "sdk-object"])
def test_the_cheapest_rate_and_the_paid_for_service_are_picked_the_sdks_way(as_object):
    shipment = convert_to_easypost_object(SHIPMENT) if as_object else SHIPMENT
    # the cheapest: the first of two equal rates, as the SDK keeps it
    assert pick_rate(shipment, None, operation="buy_shipment")["id"] == "rate_ground"
    # a service paid for, its carrier and name compared without case
    paid = ShippingService("usps", "PRIORITY")
    assert pick_rate(shipment, paid, operation="buy_shipment")["id"] == "rate_priority"


def test_a_service_not_among_the_rates_is_refused_and_no_rate_at_all_is_the_sdks_error():
    with pytest.raises(ServiceNotOffered) as refused:
        pick_rate(SHIPMENT, ShippingService("FedEx", "Ground"), operation="buy_shipment")
    assert "USPS Priority" in refused.value.details["offered"]
    with pytest.raises(easypost.errors.FilteringError):
        pick_rate({"id": "shp_2", "rates": []}, None, operation="buy_shipment")
