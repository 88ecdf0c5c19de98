"""EasyPost's address verification for the sandbox: ``POST /v2/addresses`` with
``verify`` or ``verify_strict``, ``POST /v2/addresses/create_and_verify`` and
``GET /v2/addresses/{id}/verify``, answering the way EasyPost does (the Address with its
``verifications.delivery`` and ``verifications.zip4``: ``success``, ``errors`` of
``{code, field, message, suggestion}`` and ``details``; a strict verification that
fails is ``422 ADDRESS.VERIFY.FAILURE`` with the same errors).

The sandbox's addresses, after EasyPost's own documented test addresses:

- **undeliverable**: a ``street1`` containing ``UNDELIVERABLE`` (or EasyPost's example
  spelling ``UNDELIEVRABLE ST``), or EasyPost's verify-strict example ``000 unknown
  street`` (any ``street1`` starting ``000``), or a ZIP ``00000``/``00001``:
  ``E.ADDRESS.NOT_FOUND`` on ``address``, and ``E.HOUSE_NUMBER.MISSING`` on ``street1``
  when it has no house number;
- **correctable**: anything else with a ``street1``; it comes back the way EasyPost
  writes a verified address: upper case, street suffixes abbreviated (``Street`` ->
  ``ST``, ``Avenue`` -> ``AVE``, EasyPost's example typo ``Streat`` -> ``ST``), ``SF`` ->
  ``SAN FRANCISCO``, and a US ZIP with its ZIP+4 (``94104`` -> ``94104-1129`` for
  EasyPost's ``417 Montgomery Street``; a stable made-up +4 for any other street);
- **deliverable as sent**: an address already written that way (``417 MONTGOMERY ST``,
  ``SAN FRANCISCO``, ``94104-1129``) comes back unchanged.

Verification never needs the network: it is a pure function of the address.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

#: Words EasyPost (USPS Publication 28) abbreviates in a verified street line.
SUFFIXES: Mapping[str, str] = {
    "STREET": "ST", "STREAT": "ST", "AVENUE": "AVE", "ROAD": "RD", "BOULEVARD": "BLVD",
    "DRIVE": "DR", "LANE": "LN", "COURT": "CT", "PLACE": "PL", "SQUARE": "SQ",
    "SUITE": "STE", "APARTMENT": "APT", "FLOOR": "FL",
}  # fmt: skip
#: City shorthands EasyPost expands.
CITIES: Mapping[str, str] = {"SF": "SAN FRANCISCO", "NYC": "NEW YORK", "LA": "LOS ANGELES"}
#: The ZIP+4 EasyPost answers for its own test address (417 Montgomery Street).
KNOWN_ZIP4: Mapping[tuple[str, str], str] = {("417 MONTGOMERY ST", "94104"): "1129"}
#: ZIP codes that exist nowhere.
UNKNOWN_ZIPS = frozenset({"00000", "00001"})
#: Text in street1 that makes an address undeliverable (EasyPost's examples).
UNDELIVERABLE_MARKS = ("UNDELIVERABLE", "UNDELIEVRABLE")
#: Where every sandbox address is found (EasyPost's ``details``).
DETAILS = {"latitude": 37.79342, "longitude": -122.40288, "time_zone": "America/Los_Angeles"}


def wants_verification(body: Mapping[str, Any], name: str) -> bool:
    """EasyPost verifies when the parameter is present at all, whatever its value."""
    return name in body and body[name] is not None


def verify(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the address as EasyPost would correct it, its ``verifications``)."""
    errors = delivery_errors(values)
    if errors:
        return dict(values), {
            "zip4": {"success": False, "errors": errors, "details": None},
            "delivery": {"success": False, "errors": errors, "details": {}},
        }
    corrected = correct(values)
    zip4 = {"success": True, "errors": [], "details": None}
    if corrected.get("country") != "US":
        zip4 = {"success": False, "errors": [_error("E.ZIP4.UNAVAILABLE", "zip",
                                                    "ZIP+4 is for US addresses")],
                "details": None}  # fmt: skip
    return corrected, {"zip4": zip4,
                       "delivery": {"success": True, "errors": [], "details": dict(DETAILS)}}  # fmt: skip


def delivery_errors(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The errors that make an address undeliverable; none for a deliverable one."""
    street = str(values.get("street1") or "").strip().upper()
    zip_code = str(values.get("zip") or "").strip()
    if not street:
        return [_error("E.ADDRESS.NOT_FOUND", "address", "Address not found"),
                _error("E.HOUSE_NUMBER.MISSING", "street1", "House number is missing")]  # fmt: skip
    unknown = any(mark in street for mark in UNDELIVERABLE_MARKS) or street.startswith("000")
    if not (unknown or zip_code[:5] in UNKNOWN_ZIPS):
        return []
    errors = [_error("E.ADDRESS.NOT_FOUND", "address", "Address not found")]
    if not street[:1].isdigit():
        errors.append(_error("E.HOUSE_NUMBER.MISSING", "street1", "House number is missing"))
    return errors


def correct(values: Mapping[str, Any]) -> dict[str, Any]:
    """The address as EasyPost writes a verified one."""
    fixed = dict(values)
    for name in ("street1", "street2"):
        if fixed.get(name):
            fixed[name] = _street(str(fixed[name]))
    if fixed.get("city"):
        city = " ".join(str(fixed["city"]).upper().split())
        fixed["city"] = CITIES.get(city, city)
    for name in ("state", "country"):
        if fixed.get(name):
            fixed[name] = str(fixed[name]).strip().upper()
    zip_code = str(fixed.get("zip") or "").strip()
    if fixed.get("country") == "US" and re.fullmatch(r"\d{5}", zip_code):
        fixed["zip"] = f"{zip_code}-{_plus4(str(fixed.get('street1')), zip_code)}"
    elif zip_code:
        fixed["zip"] = zip_code.upper()
    return fixed


def strict_failure_errors(verifications: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The errors of a failed delivery verification, None when it succeeded."""
    delivery = verifications.get("delivery") or {}
    return None if delivery.get("success", True) else list(delivery.get("errors") or [])


def _street(line: str) -> str:
    words = [word.strip(".,") for word in line.upper().split()]
    return " ".join(SUFFIXES.get(word, word) for word in words if word)


def _plus4(street: str, zip_code: str) -> str:
    known = KNOWN_ZIP4.get((street, zip_code))
    if known:
        return known
    digest = hashlib.sha256(f"{street}|{zip_code}".encode()).hexdigest()
    return f"{int(digest[:8], 16) % 10000:04d}"


def _error(code: str, field: str, message: str) -> dict[str, Any]:
    return {"code": code, "field": field, "message": message, "suggestion": None}
