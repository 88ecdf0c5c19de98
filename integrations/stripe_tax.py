"""Stripe Tax through the official SDK (``stripe.StripeClient``): a calculation before the
order, a transaction that records it at capture, reversals with refunds. Built as the
payment gateway is - key and base URL from Settings, the SDK's retries off,
``retry.call_provider`` around every call - but on a client of its own, so that the API,
which quotes tax, does not load the payment gateway.

Stripe keys each effect by its idempotency key (``tax_record_<reference>``,
``tax_reversal_<reference>``): the same reference again is replayed, however often a
retry sends it. Stripe has no list or search of tax transactions, so a reference used
already under a key Stripe no longer keeps (24 hours) cannot be read back by it: that
refusal surfaces as a ``PermanentProviderError`` whose code is in ``REFERENCE_USED``, and
the transaction is read by the id the caller kept (``retrieve_transaction``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import stripe

from fulfillment.settings import Settings
from integrations.retry import DEFAULT_POLICY, RetryPolicy, call_provider
from integrations.stripe_client import plain, stripe_client
from integrations.tax_port import TaxCalculation, TaxLine, TaxTransaction

T = TypeVar("T")

#: Provider label in metrics and errors: the same Stripe account as the payments.
PROVIDER = "stripe"
#: Seconds one HTTP request to Stripe may take (connect and read).
DEFAULT_TIMEOUT = 10.0
#: Stripe's refusal of a transaction reference used already. Stripe documents no code of
#: its own for it: the sandbox's, and Stripe's generic one for an id that exists.
REFERENCE_USED = frozenset({"tax_transaction_reference_already_used", "resource_already_exists"})
#: Our address fields Stripe Tax reads (``name`` is not one of them).
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")
#: Stripe leaves an object's line items out unless asked: each call asks, so that the
#: answer carries their first page and no second call lists them.
EXPAND = ["line_items"]
#: Line items read per page when an object has more than it came with (Stripe's maximum).
PAGE_SIZE = 100


def record_key(reference: str) -> str:
    return f"tax_record_{reference}"


def reversal_key(reference: str) -> str:
    return f"tax_reversal_{reference}"


class StripeTax:
    """The ``TaxCalculator`` port on Stripe Tax's calculations and transactions."""

    def __init__(self, client: stripe.StripeClient, *, policy: RetryPolicy = DEFAULT_POLICY):
        self._client = client
        self._policy = policy

    def calculate(
        self,
        *,
        currency: str,
        lines: list[TaxLine],
        shipping: int,
        address: Mapping[str, Any],
    ) -> TaxCalculation:
        params = {
            "currency": currency.lower(),
            "line_items": [{"amount": line.amount, "reference": line.reference,
                            "tax_code": line.tax_code, "quantity": line.quantity,
                            "tax_behavior": "exclusive"} for line in lines],
            "customer_details": {"address_source": "shipping",
                                 "address": {f: address[f] for f in ADDRESS_FIELDS if address.get(f)}},
            "shipping_cost": {"amount": shipping},
            "expand": EXPAND,
        }  # fmt: skip
        calculation = self._call(
            "tax_calculation", lambda: self._client.v1.tax.calculations.create(params)
        )
        items = self._line_items(calculation, self._client.v1.tax.calculations.line_items)
        return to_calculation(calculation, items)

    def record(self, *, calculation_id: str, reference: str) -> TaxTransaction:
        params = {"calculation": calculation_id, "reference": reference, "expand": EXPAND}
        options = {"idempotency_key": record_key(reference)}
        transaction = self._call(
            "tax_record",
            lambda: self._client.v1.tax.transactions.create_from_calculation(params, options),
        )
        return self._transaction(transaction)

    def reverse(
        self,
        *,
        transaction_id: str,
        reference: str,
        lines: Mapping[str, tuple[int, int]],
        shipping: tuple[int, int] | None = None,
    ) -> TaxTransaction:
        """Stripe wants the amounts given back as negative numbers, each line by its line
        item id in the sale: read from the sale, sorted so that a retry sends the same
        request under the same key."""
        sale = self.retrieve_transaction(transaction_id)
        unknown = sorted(set(lines) - set(sale.line_items))
        if unknown:
            raise ValueError(f"not lines of tax transaction {transaction_id}: {unknown}")
        params: dict[str, Any] = {"mode": "partial", "original_transaction": transaction_id,
                                  "reference": reference, "expand": EXPAND}  # fmt: skip
        if lines:
            params["line_items"] = [
                {"original_line_item": sale.line_items[product], "reference": product,
                 "amount": -amount, "amount_tax": -tax}
                for product, (amount, tax) in sorted(lines.items())
            ]  # fmt: skip
        if shipping is not None:
            params["shipping_cost"] = {"amount": -shipping[0], "amount_tax": -shipping[1]}
        options = {"idempotency_key": reversal_key(reference)}
        reversal = self._call(
            "tax_reversal",
            lambda: self._client.v1.tax.transactions.create_reversal(params, options),
        )
        return self._transaction(reversal)

    def retrieve_transaction(self, transaction_id: str) -> TaxTransaction:
        transaction = self._call(
            "retrieve_tax_transaction",
            lambda: self._client.v1.tax.transactions.retrieve(transaction_id, {"expand": EXPAND}),
        )
        return self._transaction(transaction)

    def _transaction(self, obj: Any) -> TaxTransaction:
        return to_transaction(
            obj, self._line_items(obj, self._client.v1.tax.transactions.line_items)
        )

    def _line_items(self, obj: Any, service: Any) -> list[dict[str, Any]]:
        """Every line item of a calculation or transaction: the page it came with, if it
        came with one, and the pages after it."""
        data = plain(obj)
        page = data.get("line_items")
        items, more = (list(page["data"]), page["has_more"]) if page else ([], True)
        while more:
            params = {"limit": PAGE_SIZE, **({"starting_after": items[-1]["id"]} if items else {})}
            page = plain(
                self._call("list_tax_line_items", partial(service.list, data["id"], params))
            )
            items, more = items + list(page["data"]), page["has_more"]
        return [plain(item) for item in items]

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        return call_provider(fn, provider=PROVIDER, operation=operation, policy=self._policy)


def to_calculation(obj: Any, items: list[dict[str, Any]]) -> TaxCalculation:
    calculation = plain(obj)
    shipping = calculation.get("shipping_cost") or {}
    expires_at = calculation.get("expires_at")
    return TaxCalculation(
        id=calculation["id"],
        tax=int(calculation["tax_amount_exclusive"]),
        shipping_tax=int(shipping.get("amount_tax") or 0),
        line_taxes={item["reference"]: int(item["amount_tax"]) for item in items},
        expires_at=datetime.fromtimestamp(expires_at, UTC) if expires_at else None,
    )


def to_transaction(obj: Any, items: list[dict[str, Any]]) -> TaxTransaction:
    """A sale or a reversal (its amounts negative); its tax is its lines' and shipping's."""
    transaction = plain(obj)
    shipping = transaction.get("shipping_cost") or {}
    return TaxTransaction(
        id=transaction["id"],
        reference=transaction["reference"],
        type=transaction["type"],
        tax=sum(int(item["amount_tax"]) for item in items) + int(shipping.get("amount_tax") or 0),
        line_items={item["reference"]: item["id"] for item in items},
    )


def build_stripe_tax(
    settings: Settings,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> StripeTax:
    """A tax calculator on the configured key and base URL (the sandbox or Stripe)."""
    return StripeTax(stripe_client(settings, timeout=timeout), policy=policy)
