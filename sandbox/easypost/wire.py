"""EasyPost's wire conventions for the sandbox: error bodies, address and parcel checks,
the rate card (less the services withdrawn through the control API), the rate a one-call
buy asks for, and ``before_id``/``after_id`` pages."""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from typing import Any

from sandbox.wire import iso, new_id, parse_iso

#: Rates offered for every parcel: carrier, service, base price, price per pound, days.
RATE_CARD = (
    ("USPS", "GroundAdvantage", 5.10, 0.35, 5),
    ("USPS", "Priority", 7.90, 0.55, 2),
    ("UPS", "Ground", 9.45, 0.60, 3),
    ("FedEx", "FEDEX_2_DAY", 18.20, 0.90, 2),
)
#: Address fields a label cannot be bought without.
REQUIRED_ADDRESS_FIELDS = ("street1", "city", "zip", "country")
#: Address fields EasyPost keeps.
ADDRESS_FIELDS = (
    "name",
    "company",
    "street1",
    "street2",
    "city",
    "state",
    "zip",
    "country",
    "phone",
    "email",
)


class EasyPostFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body


def failure(
    status: int, code: str, *, message: str, errors: list[dict[str, Any]] | None = None
) -> EasyPostFailure:
    return EasyPostFailure(
        status, {"error": {"code": code, "message": message, "errors": errors or []}}
    )


def address(raw: Any, field: str) -> dict[str, Any]:
    """A stored Address for a shipment's ``to_address``/``from_address``, or the 422
    ``ADDRESS.VERIFY.FAILURE`` EasyPost answers for one missing what a label needs.
    Whether it is deliverable is checked only when asked (``verify``/``verify_strict``,
    see ``easypost_addresses``), as EasyPost does."""
    raw = raw if isinstance(raw, Mapping) else {}
    values = {name: raw.get(name) for name in ADDRESS_FIELDS}
    values["country"] = values["country"] or "US"
    missing = [name for name in REQUIRED_ADDRESS_FIELDS if not values[name]]
    if missing:
        errors = [
            {"field": f"{field}.{name}", "message": "cannot be blank", "suggestion": None}
            for name in missing
        ]
        raise failure(
            422, "ADDRESS.VERIFY.FAILURE", message="Unable to verify address.", errors=errors
        )
    stamp = iso(time.time())
    return {
        "id": new_id("adr", 32),
        "object": "Address",
        "mode": "test",
        **values,
        "residential": None,
        "verifications": {},
        "created_at": stamp,
        "updated_at": stamp,
    }


def parcel(raw: Any) -> dict[str, Any]:
    raw = raw if isinstance(raw, Mapping) else {}
    try:
        weight = float(raw.get("weight") or 0)
    except (TypeError, ValueError):
        weight = 0.0
    if weight <= 0:
        errors = [{"field": "parcel.weight", "message": "must be greater than 0"}]
        raise failure(
            422, "SHIPMENT.INVALID_PARAMS", message="Unable to create shipment.", errors=errors
        )
    stamp = iso(time.time())
    dimensions = {name: raw.get(name) for name in ("length", "width", "height")}
    return {
        "id": new_id("prcl", 32),
        "object": "Parcel",
        "mode": "test",
        "weight": weight,
        **dimensions,
        "predefined_package": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def postage_label(origin: str) -> dict[str, Any]:
    """A bought label; its image is served by the sandbox itself."""
    label_id, stamp = new_id("pl", 32), iso(time.time())
    return {
        "id": label_id,
        "object": "PostageLabel",
        "label_date": stamp,
        "label_file_type": "image/png",
        "label_resolution": 300,
        "label_size": "4x6",
        "label_url": f"{origin}/easypost/labels/{label_id}.png",
        "created_at": stamp,
        "updated_at": stamp,
    }


def rates_for(
    shipment: Mapping[str, Any], *, withdrawn: Collection[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """A rate per service of the rate card, but the ``withdrawn`` (carrier, service)
    pairs (as the control API set them: no longer offered)."""
    pounds = math.ceil(shipment["parcel"]["weight"] / 16)
    rates = []
    for carrier, service, base, per_pound, days in RATE_CARD:
        if (carrier, service) in withdrawn:
            continue
        price = f"{base + per_pound * pounds:.2f}"
        rates.append(
            {
                "id": new_id("rate", 32),
                "object": "Rate",
                "mode": "test",
                "carrier": carrier,
                "service": service,
                "rate": price,
                "currency": "USD",
                "retail_rate": price,
                "retail_currency": "USD",
                "list_rate": price,
                "list_currency": "USD",
                "delivery_days": days,
                "est_delivery_days": days,
                "delivery_date_guaranteed": False,
                "shipment_id": shipment["id"],
                "carrier_account_id": f"ca_{carrier.lower()}_sandbox",
            }
        )
    return rates


def one_call_rate(params: Mapping[str, Any], rates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rate a one-call buy asks for (``service``, with ``carrier`` or
    ``carrier_accounts``: the shipment is bought as it is created), None for a plain
    create; the cheapest of several. A service none of ``rates`` offers is EasyPost's 422
    ``SHIPMENT.POSTAGE.FAILURE`` (the code EasyPost lists for a purchase the carrier
    refuses; what the real API says in this case is not documented)."""
    service = params.get("service")
    if not service:
        return None
    carrier = params.get("carrier")
    accounts = {a.get("id") if isinstance(a, Mapping) else a
                for a in params.get("carrier_accounts") or ()}  # fmt: skip
    wanted = [
        rate for rate in rates
        if rate["service"].lower() == str(service).lower()
        and (not carrier or rate["carrier"].lower() == str(carrier).lower())
        and (not accounts or rate["carrier_account_id"] in accounts)
    ]  # fmt: skip
    if not wanted:
        named = f"{carrier} {service}" if carrier else str(service)
        raise failure(422, "SHIPMENT.POSTAGE.FAILURE",
                      message=f"No rate found for {named}: the service is not offered for "
                      "this shipment.",
                      errors=[{"field": "service", "message": "is not offered"}])  # fmt: skip
    return min(wanted, key=lambda rate: float(rate["rate"]))


def page(
    items: list[dict[str, Any]], query: Mapping[str, str], *, key: str, created: Mapping[str, float]
) -> dict[str, Any]:
    """Newest first, ``page_size`` (default 20, at most 100), ``before_id``/``after_id``,
    ``start_datetime``/``end_datetime``, and ``has_more``."""
    newest = list(reversed(items))
    ids = [item["id"] for item in newest]
    if query.get("before_id") in ids:
        newest = newest[ids.index(query["before_id"]) + 1 :]
    elif query.get("after_id") in ids:
        newest = newest[: ids.index(query["after_id"])]
    start, end = _bound(query, "start_datetime"), _bound(query, "end_datetime")
    newest = [
        item for item in newest if _within(created.get(item["id"], 0.0), start=start, end=end)
    ]
    try:
        size = max(1, min(100, int(query.get("page_size") or 20)))
    except ValueError:
        raise failure(422, "PARAMETER.INVALID", message="page_size must be an integer") from None
    return {key: newest[:size], "has_more": len(newest) > size}


def _bound(query: Mapping[str, str], name: str) -> float | None:
    if not query.get(name):
        return None
    try:
        return parse_iso(query[name])
    except ValueError:
        raise failure(
            422, "PARAMETER.INVALID", message=f"{name} must be an ISO 8601 time"
        ) from None


def _within(stamp: float, *, start: float | None, end: float | None) -> bool:
    return (start is None or stamp >= start) and (end is None or stamp <= end)
