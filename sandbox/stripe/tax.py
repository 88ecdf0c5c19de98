"""Stripe Tax in the sandbox, in Stripe's shapes and with its refusals: calculations, and
the transactions that record one (``create_from_calculation``) or give part of a sale
back (``create_reversal``).

- The rate comes from a small table by country and, in the US, by state (``rate_for``);
  a line's tax is its amount times the rate, rounded half up; shipping is taxed where the
  table says so. An address without a valid country, or a US one without a state, is
  Stripe's 400 ``customer_tax_location_invalid``. Amounts are tax exclusive.
- A calculation can be read and recorded for 90 days on the sandbox clock; a reference is
  used once across all transactions, reversals too.
- A reversal takes negative amounts by line and shipping (``mode=partial``), or all that
  is left (``full``), never more than remains; a ``flat_amount`` is refused, saying so.
- ``line_items`` is answered as Stripe answers it: null unless the request expands it
  (``expand[]=line_items``), then its first page; the rest through ``/line_items``.

Both are kept in the store (``tax_calculation``, ``tax_transaction``) and outlive a
restart as the other Stripe objects do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.store import Store
from sandbox.stripe.expand import expand_list
from sandbox.stripe.wire import StripeFailure, currency_param, invalid, list_page, no_such
from sandbox.wire import new_id

#: Seconds a calculation can be read and recorded: Stripe's 90 days.
CALCULATION_SECONDS = 90 * 24 * 3600
#: The tax codes used when none is given: general tangible goods, and shipping.
DEFAULT_TAX_CODE = "txcd_99999999"
SHIPPING_TAX_CODE = "txcd_92010001"
#: Stripe's refusal of an address it cannot place in a tax jurisdiction.
LOCATION_INVALID = "customer_tax_location_invalid"
#: The refusal of a transaction reference used already (Stripe documents no code of its own).
REFERENCE_USED = "tax_transaction_reference_already_used"
#: The key of shipping among what is left of a transaction (line item ids start ``tax_li_``).
SHIPPING = "shipping"
#: The address fields a calculation keeps in ``customer_details``.
ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


@dataclass(frozen=True, slots=True)
class Rate:
    """A jurisdiction's rate in percent (as Stripe's ``percentage_decimal``), whether it
    taxes shipping, and what tax it is."""

    percentage: str
    shipping_taxable: bool = False
    tax_type: str = "sales_tax"
    taxability_reason: str = "standard_rated"


#: Where the account collects nothing.
NO_TAX = Rate("0.0", taxability_reason="not_collecting")
#: US states by ISO 3166-2 code; the others are ``US_OTHER``.
US_STATES = {
    "CA": Rate("7.25"),
    "NY": Rate("8.875", shipping_taxable=True),
    "TX": Rate("6.25", shipping_taxable=True),
    "WA": Rate("10.25", shipping_taxable=True),
    "OR": Rate("0.0", taxability_reason="not_subject_to_tax"),
}
US_OTHER = Rate("5.0")
#: VAT countries, goods and shipping alike; a country not here is ``NO_TAX``.
COUNTRIES = {
    country: Rate(percentage, shipping_taxable=True, tax_type="vat")
    for country, percentage in (("DE", "19.0"), ("FR", "20.0"), ("GB", "20.0"), ("NL", "21.0"))
}


def rate_for(country: str, state: str | None) -> Rate:
    if country == "US":
        return US_STATES.get((state or "").upper(), US_OTHER)
    return COUNTRIES.get(country, NO_TAX)


def tax_on(amount: int, rate: Rate) -> int:
    """The tax on ``amount`` minor units (tax exclusive) at ``rate``, rounded half up."""
    return int((amount * Decimal(rate.percentage) / 100).quantize(Decimal(1), ROUND_HALF_UP))


def tax_location(details: Any) -> tuple[str, str | None]:
    """(country, state) of ``customer_details[address]``, or Stripe's 400."""
    address = (details or {}).get("address") if isinstance(details, Mapping) else None
    address = address if isinstance(address, Mapping) else {}
    country = str(address.get("country") or "").upper()
    state = str(address.get("state") or "").upper() or None
    if len(country) != 2 or not country.isalpha() or (country == "US" and state is None):
        raise invalid("We could not determine the customer's tax location based on the "
                      "provided customer address.", code=LOCATION_INVALID,
                      param="customer_details[address]")  # fmt: skip
    return country, state


class TaxLedger:
    """Stripe Tax's calculations and transactions (reversals are transactions too)."""

    def __init__(self, *, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self.calculations: dict[str, dict[str, Any]] = store.load("tax_calculation")
        self.transactions: dict[str, dict[str, Any]] = store.load("tax_transaction")
        #: Every reference used, and by which transaction.
        self._references = {t["reference"]: t["id"] for t in self.transactions.values()}

    def calculate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        currency = currency_param(params)
        raw_lines = _list_param(params.get("line_items"), "line_items", required=True)
        country, state = tax_location(params.get("customer_details"))
        rate = rate_for(country, state)
        lines = [_calculation_line(raw, f"line_items[{i}]", rate) for i, raw in enumerate(raw_lines)]  # fmt: skip
        references = [line["reference"] for line in lines if line["reference"] is not None]
        if len(set(references)) != len(references):
            raise invalid("Line item references must be unique.", param="line_items")
        shipping = _shipping(params.get("shipping_cost"), rate)
        parts = [*lines, *([shipping] if shipping else [])]
        tax = sum(part["amount_tax"] for part in parts)
        taxed = sum(part["amount"] for part in (parts if rate.shipping_taxable else lines))
        now = int(self._clock())
        calculation = {
            "id": new_id("taxcalc"), "object": "tax.calculation", "currency": currency,
            "amount_total": sum(part["amount"] for part in parts) + tax,
            "customer": params.get("customer"),
            "customer_details": _customer_details(params["customer_details"]),
            "expires_at": now + CALCULATION_SECONDS, "line_items": lines, "livemode": False,
            "ship_from_details": None, "shipping_cost": shipping,
            "tax_amount_exclusive": tax, "tax_amount_inclusive": 0,
            "tax_breakdown": [{"amount": tax, "inclusive": False, "taxable_amount": taxed,
                               "taxability_reason": rate.taxability_reason,
                               "tax_rate_details": {
                                   "country": country, "flat_amount": None,
                                   "percentage_decimal": rate.percentage, "rate_type": "percentage",
                                   "state": state if country == "US" else None,
                                   "tax_type": rate.tax_type}}],
            "tax_date": now,
        }  # fmt: skip
        self.calculations[calculation["id"]] = self._keep("tax_calculation", calculation)
        return _paged(calculation, "calculations", params)

    def calculation(self, calculation_id: str, *, param: str = "calculation") -> dict[str, Any]:
        """A calculation that has not expired; 404 for one unknown, 400 once expired."""
        if calculation_id not in self.calculations:
            raise no_such("tax calculation", calculation_id, param=param)
        calculation = self.calculations[calculation_id]
        if calculation["expires_at"] <= self._clock():
            raise invalid(f"The tax calculation {calculation_id} has expired: a calculation "
                          "can be used for 90 days.", param=param)  # fmt: skip
        return calculation

    def transaction(self, transaction_id: str, *, param: str = "transaction") -> dict[str, Any]:
        if transaction_id not in self.transactions:
            raise no_such("tax transaction", transaction_id, param=param)
        return self.transactions[transaction_id]

    def retrieve(self, collection: str, object_id: str,
                 query: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
        """``GET /v1/tax/{collection}/{id}``: a calculation or a transaction."""
        return _paged(self._find(collection, object_id), collection, query)

    def line_items(self, collection: str, object_id: str, query: Mapping[str, str]):
        """``GET /v1/tax/{collection}/{id}/line_items``, in the order they were made."""
        lines = self._find(collection, object_id)["line_items"]
        return list_page(lines[::-1], query, url=f"/v1/tax/{collection}/{object_id}/line_items")

    def _find(self, collection: str, object_id: str) -> dict[str, Any]:
        find = self.calculation if collection == "calculations" else self.transaction
        return find(object_id, param="id")

    def record(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``create_from_calculation``: the calculation's lines and shipping as a sale."""
        reference = self._unused_reference(params)
        calculation = self.calculation(_required(params, "calculation"))
        lines = [_transaction_line(line) for line in calculation["line_items"]]
        shipping = dict(calculation["shipping_cost"]) if calculation["shipping_cost"] else None
        return self._transaction(calculation, params, reference, lines=lines, shipping=shipping)

    def reverse(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``create_reversal`` of a sale: what ``mode`` says, as negative amounts."""
        original = self.transaction(_required(params, "original_transaction"),
                                    param="original_transaction")  # fmt: skip
        if original["type"] != "transaction":
            raise invalid(f"{original['id']} is a reversal; only a transaction can be reversed.",
                          param="original_transaction")  # fmt: skip
        mode = params.get("mode")
        if mode not in ("full", "partial"):
            raise invalid("Invalid mode: must be one of full or partial.", param="mode")
        reference = self._unused_reference(params)
        left = self._left(original)
        if params.get("flat_amount") not in (None, ""):
            raise invalid("The sandbox reverses by line_items and shipping_cost, or in full; "
                          "it does not spread a flat_amount.", param="flat_amount")  # fmt: skip
        if mode == "full":
            taken, given = {key: (-amount, -tax) for key, (amount, tax) in left.items() if amount or tax}, {}  # fmt: skip
            if not taken:
                raise invalid(f"Transaction {original['id']} has been fully reversed already.",
                              param="original_transaction")  # fmt: skip
        else:
            taken, given = _partial(original, params, left)
        lines, shipping = _parts(original, taken, given)
        return self._transaction(original, params, reference, lines=lines, shipping=shipping)

    def _unused_reference(self, params: Mapping[str, Any]) -> str:
        reference = _required(params, "reference")
        if reference in self._references:
            raise invalid(f"A tax transaction with the reference '{reference}' already exists; "
                          "a reference must be unique across all transactions, reversals "
                          "included.", code=REFERENCE_USED, param="reference")  # fmt: skip
        return reference

    def _transaction(self, source: Mapping[str, Any], params: Mapping[str, Any], reference: str,
                     *, lines: list[dict[str, Any]], shipping: dict[str, Any] | None):  # fmt: skip
        """A sale recorded from the calculation ``source``, or a reversal of the sale."""
        reversal = source["object"] == "tax.transaction"
        now = int(self._clock())
        transaction = {
            "id": new_id("tax"), "object": "tax.transaction", "created": now,
            "currency": source["currency"], "customer": source["customer"],
            "customer_details": source["customer_details"], "line_items": lines,
            "livemode": False, "metadata": dict(params.get("metadata") or {}), "posted_at": now,
            "reference": reference, "ship_from_details": None, "shipping_cost": shipping,
            "reversal": {"original_transaction": source["id"]} if reversal else None,
            "tax_date": source["tax_date"], "type": "reversal" if reversal else "transaction",
        }  # fmt: skip
        self.transactions[transaction["id"]] = self._keep("tax_transaction", transaction)
        self._references[reference] = transaction["id"]
        return _paged(transaction, "transactions", params)

    def _left(self, original: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        """(amount, tax) that remains of each line of a sale, and of its shipping."""
        left = {line["id"]: (line["amount"], line["amount_tax"]) for line in original["line_items"]}
        if original["shipping_cost"]:
            left[SHIPPING] = (original["shipping_cost"]["amount"],
                              original["shipping_cost"]["amount_tax"])  # fmt: skip
        for reversal in self.transactions.values():
            if (reversal["reversal"] or {}).get("original_transaction") != original["id"]:
                continue
            parts = [(line["reversal"]["original_line_item"], line) for line in reversal["line_items"]]  # fmt: skip
            if reversal["shipping_cost"]:
                parts.append((SHIPPING, reversal["shipping_cost"]))
            for key, part in parts:
                left[key] = (left[key][0] + part["amount"], left[key][1] + part["amount_tax"])
        return left

    def _keep(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._store.put(kind, obj["id"], obj)
        return obj


def _partial(original: Mapping[str, Any], params: Mapping[str, Any],
             left: dict[str, tuple[int, int]]) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """What a partial reversal names, taken from what is left: {part: (amount, tax)}, and
    each line's reference, quantity and metadata."""
    by_id = {line["id"]: line for line in original["line_items"]}
    taken: dict[str, tuple[int, int]] = {}
    given: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(_list_param(params.get("line_items"), "line_items")):
        param = f"line_items[{index}]"
        line = by_id.get(str(raw.get("original_line_item") or ""))
        if line is None or line["id"] in taken:
            raise invalid(f"{param}[original_line_item] is not a line item of transaction "
                          f"{original['id']}, or is named twice.",
                          param=f"{param}[original_line_item]")  # fmt: skip
        taken[line["id"]] = _take(left, line["id"], raw, param)
        given[line["id"]] = {
            "reference": _required(raw, "reference", param=f"{param}[reference]"),
            "quantity": _integer(raw.get("quantity") or line["quantity"], f"{param}[quantity]"),
            "metadata": raw.get("metadata"),
        }
    if params.get("shipping_cost"):
        if SHIPPING not in left:
            raise invalid(f"Transaction {original['id']} has no shipping cost to reverse.",
                          param="shipping_cost")  # fmt: skip
        taken[SHIPPING] = _take(left, SHIPPING, params["shipping_cost"], "shipping_cost")
    if not taken:
        raise invalid("A partial reversal needs line_items or shipping_cost.",
                      param="line_items")  # fmt: skip
    return taken, given


def _parts(original: Mapping[str, Any], taken: Mapping[str, tuple[int, int]],
           given: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:  # fmt: skip
    """A reversal's lines and shipping for {part: (amount, tax)} taken from a sale."""
    lines = [_transaction_line(line, taken[line["id"]], **given.get(line["id"], {}))
             for line in original["line_items"] if line["id"] in taken]  # fmt: skip
    shipping = None
    if SHIPPING in taken:
        amount, tax = taken[SHIPPING]
        shipping = {**original["shipping_cost"], "amount": amount, "amount_tax": tax}
    return lines, shipping


def _take(left: dict[str, tuple[int, int]], key: str, raw: Any, param: str) -> tuple[int, int]:
    """The negative (amount, amount_tax) of ``raw``, taken from what is left of ``key``."""
    raw = raw if isinstance(raw, Mapping) else {}
    amount = _integer(raw.get("amount"), f"{param}[amount]", sign=-1)
    tax = _integer(raw.get("amount_tax"), f"{param}[amount_tax]", sign=-1)
    have_amount, have_tax = left[key]
    if -amount > have_amount or -tax > have_tax:
        raise invalid(f"{param} reverses more ({amount}, tax {tax}) than remains "
                      f"({have_amount}, tax {have_tax}).", param=param)  # fmt: skip
    left[key] = (have_amount + amount, have_tax + tax)
    return amount, tax


def _paged(obj: Mapping[str, Any], collection: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """An object as Stripe answers it: its line items null unless expanded."""
    return expand_list(obj, "line_items", f"/v1/tax/{collection}/{obj['id']}/line_items", params)


def _calculation_line(raw: Mapping[str, Any], param: str, rate: Rate) -> dict[str, Any]:
    amount = _exclusive_amount(raw, param)
    return {
        "id": new_id("tax_li", 14), "object": "tax.calculation_line_item", "amount": amount,
        "amount_tax": tax_on(amount, rate), "livemode": False,
        "metadata": dict(raw.get("metadata") or {}), "product": raw.get("product"),
        "quantity": _integer(raw.get("quantity") or 1, f"{param}[quantity]"),
        "reference": raw.get("reference"), "tax_behavior": "exclusive",
        "tax_code": raw.get("tax_code") or DEFAULT_TAX_CODE,
    }  # fmt: skip


def _shipping(raw: Any, rate: Rate) -> dict[str, Any] | None:
    if not raw:
        return None
    amount = _exclusive_amount(raw, "shipping_cost")
    return {"amount": amount, "amount_tax": tax_on(amount, rate) if rate.shipping_taxable else 0,
            "shipping_rate": None, "tax_behavior": "exclusive",
            "tax_code": raw.get("tax_code") or SHIPPING_TAX_CODE}  # fmt: skip


def _transaction_line(line: Mapping[str, Any], taken: tuple[int, int] | None = None, **given: Any):
    """A sale's line from a calculation's line or, with ``taken`` (amount, tax), a
    reversal's line of a sale's line; ``given`` holds its quantity, reference, metadata."""
    amount, tax = taken or (line["amount"], line["amount_tax"])
    return {
        "id": new_id("tax_li", 14), "object": "tax.transaction_line_item", "amount": amount,
        "amount_tax": tax, "livemode": False, "product": line["product"],
        "metadata": dict(given.get("metadata") or ({} if taken else line["metadata"])),
        "quantity": given.get("quantity") or line["quantity"],
        "reference": given.get("reference") or line["reference"],
        "reversal": {"original_line_item": line["id"]} if taken else None,
        "tax_behavior": line["tax_behavior"], "tax_code": line["tax_code"],
        "type": "reversal" if taken else "transaction",
    }  # fmt: skip


def _customer_details(details: Mapping[str, Any]) -> dict[str, Any]:
    kept = {field: details["address"].get(field) or None for field in ADDRESS_FIELDS}
    return {"address": {**kept, "country": str(kept["country"]).upper()},
            "address_source": details.get("address_source") or None,
            "ip_address": details.get("ip_address"), "tax_ids": [],
            "taxability_override": "none"}  # fmt: skip


def _list_param(raw: Any, param: str, *, required: bool = False) -> list[Mapping[str, Any]]:
    if required and raw in (None, "", []):
        raise _missing(param)
    raw = raw or []
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise invalid(f"Invalid array: {param} must be a list of objects.", param=param)
    return raw


def _integer(raw: Any, param: str, *, sign: int = 1) -> int:
    """An integer parameter that is not negative (``sign=1``) or not positive (``-1``)."""
    if raw in (None, ""):
        raise _missing(param)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {raw}", code="parameter_invalid_integer",
                      param=param) from None  # fmt: skip
    if value * sign < 0:
        bound = "greater" if sign > 0 else "less"
        raise invalid(f"This value must be {bound} than or equal to 0.", param=param)
    return value


def _exclusive_amount(raw: Mapping[str, Any], param: str) -> int:
    """``amount``, tax exclusive: the only ``tax_behavior`` the sandbox calculates."""
    if raw.get("tax_behavior") not in (None, "", "exclusive"):
        raise invalid("The sandbox calculates tax on tax-exclusive amounts only: "
                      "tax_behavior must be exclusive.", param=f"{param}[tax_behavior]")  # fmt: skip
    return _integer(raw.get("amount"), f"{param}[amount]")


def _required(params: Mapping[str, Any], name: str, *, param: str | None = None) -> str:
    if params.get(name) in (None, ""):
        raise _missing(param or name)
    return str(params[name])


def _missing(param: str) -> StripeFailure:
    return invalid(f"Missing required param: {param}.", code="parameter_missing", param=param)
