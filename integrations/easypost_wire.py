"""EasyPost's shapes and ours, both ways: an address (``street1``, ``zip`` against our
``line1``, ``postal_code``), a parcel, a bought shipment as a ``Label``, a tracker as
``Tracking``, and the rate a shipment is bought at (the cheapest, or the service a
customer paid for). No calls: the gateway (``integrations.easypost_gateway``) makes
them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from easypost.easypost_object import EasyPostObject, convert_to_easypost_object
from easypost.util import get_lowest_object_rate

from fulfillment.money import to_minor
from fulfillment.shipping_options import ShippingRate
from integrations.errors import ServiceNotOffered, our_address_field
from integrations.ports import Label, Parcel, ShippingService, TrackerStatus, Tracking


def pick_rate(shipment: Any, service: ShippingService | None, *, operation: str) -> Any:
    """The rate a label is bought at: the cheapest, or the paid-for service's
    (``ServiceNotOffered`` when the shipment's rates lack it: no other is chosen),
    chosen by the SDK's own ``lowest_rate`` rule from a shipment given as the SDK's
    object or as the plain dict of its JSON."""
    if service is not None and not offers(shipment, service):
        offered = [f"{rate['carrier']} {rate['service']}" for rate in shipment.get("rates") or []]
        raise ServiceNotOffered(service.carrier, service.service, offered=offered,
                                provider="easypost", operation=operation)  # fmt: skip
    rates = [rate if isinstance(rate, EasyPostObject) else convert_to_easypost_object(rate)
             for rate in shipment.get("rates") or []]  # fmt: skip
    if service is None:
        return get_lowest_object_rate({"rates": rates})
    return get_lowest_object_rate({"rates": rates}, [service.carrier], [service.service])


def offers(shipment: Any, service: ShippingService | None) -> bool:
    """Whether the shipment's rates (as of its making) include ``service`` (any rate
    does for None), compared as the SDK's ``lowest_rate`` compares them."""
    return service is None or any(
        str(rate["carrier"]).lower() == service.carrier.lower()
        and str(rate["service"]).lower() == service.service.lower()
        for rate in shipment.get("rates") or []
    )


def to_easypost_address(address: Mapping[str, Any]) -> dict[str, Any]:
    """Our address shape (line1, postal_code, …) in EasyPost's (street1, zip, …)."""
    fields = {
        "name": address.get("name"),
        "company": address.get("company"),
        "street1": address.get("line1") or address.get("street1"),
        "street2": address.get("line2") or address.get("street2"),
        "city": address.get("city"),
        "state": address.get("state"),
        "zip": address.get("postal_code") or address.get("zip"),
        "country": address.get("country"),
        "phone": address.get("phone"),
        "email": address.get("email"),
    }
    return {name: value for name, value in fields.items() if value}


def from_easypost_address(checked: Any, *, original: Mapping[str, Any]) -> dict[str, Any]:
    """An EasyPost Address in our shape (line1, postal_code, …), keeping the fields of
    ``original`` EasyPost does not correct (the name); empty lines are dropped."""
    ours = {our_address_field(name): checked.get(name)
            for name in ("street1", "street2", "city", "state", "zip", "country")}  # fmt: skip
    merged = {**{k: v for k, v in original.items() if k not in ours}, **ours}
    if not merged.get("line2"):
        merged.pop("line2", None)
    if not merged.get("state"):
        merged.pop("state", None)
    return merged


def to_easypost_parcel(parcel: Parcel) -> dict[str, float]:
    fields = {
        "weight": parcel.weight_oz,
        "length": parcel.length_in,
        "width": parcel.width_in,
        "height": parcel.height_in,
    }
    return {name: value for name, value in fields.items() if value is not None}


def to_shipping_rate(rate: Mapping[str, Any]) -> ShippingRate:
    """One EasyPost rate, its price (a decimal string) in minor units."""
    currency = str(rate.get("currency") or "USD").lower()
    days = rate.get("delivery_days")
    return ShippingRate(carrier=str(rate["carrier"]), service=str(rate["service"]),
                        amount=to_minor(Decimal(str(rate["rate"])), currency), currency=currency,
                        delivery_days=int(days) if days is not None else None)  # fmt: skip


def to_label(shipment: Any) -> Label:
    rate = shipment.get("selected_rate") or {}
    tracker = shipment.get("tracker") or {}
    return Label(
        shipment_id=shipment["id"],
        reference=shipment.get("reference") or "",
        tracking_code=shipment["tracking_code"],
        label_url=shipment["postage_label"]["label_url"],
        tracker_id=tracker.get("id"),
        carrier=rate.get("carrier", ""),
        service=rate.get("service", ""),
        rate=str(rate.get("rate", "")),
        currency=rate.get("currency", ""),
    )


def to_tracking(tracker: Any) -> Tracking:
    return Tracking(
        id=tracker["id"],
        tracking_code=tracker["tracking_code"],
        status=tracker_status(tracker.get("status")),
        status_detail=tracker.get("status_detail"),
        shipment_id=tracker.get("shipment_id"),
        carrier=tracker.get("carrier"),
        est_delivery_date=tracker.get("est_delivery_date"),
    )


def tracker_status(value: str | None) -> TrackerStatus:
    try:
        return TrackerStatus(value or "unknown")
    except ValueError:
        return TrackerStatus.UNKNOWN
