"""Payments through the official Stripe SDK (``stripe.StripeClient``), never a module
global: the key and base URL come from Settings, so the sandbox and Stripe differ only
in configuration. The SDK's own retries are off; ``retry.call_provider`` owns them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import stripe

from fulfillment.settings import Settings
from integrations.errors import PermanentProviderError
from integrations.ports import Payment, Refund
from integrations.retry import DEFAULT_POLICY, RetryPolicy, call_provider
from integrations.stripe_client import plain, stripe_client

T = TypeVar("T")

#: Provider label in metrics and errors.
PROVIDER = "stripe"
#: Seconds one HTTP request to Stripe may take (connect and read).
DEFAULT_TIMEOUT = 10.0
#: PaymentIntent statuses Stripe lets us cancel from.
CANCELABLE = frozenset(
    {
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    }
)


def payment_key(order_id: str) -> str:
    return f"order_{order_id}_payment"


def refund_key(order_id: str) -> str:
    return f"order_{order_id}_refund"


def cancel_key(order_id: str) -> str:
    return f"order_{order_id}_cancel"


def capture_key(order_id: str) -> str:
    return f"order_{order_id}_capture"


#: Every PaymentIntent answer carries its charge, whose card details hold the
#: authorization's ``capture_before``.
EXPAND = ["latest_charge"]


class StripeGateway:
    """The ``PaymentGateway`` port on Stripe's PaymentIntents and Refunds."""

    def __init__(self, client: stripe.StripeClient, *, policy: RetryPolicy = DEFAULT_POLICY):
        self._client = client
        self._policy = policy

    def charge(
        self,
        *,
        order_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        description: str | None = None,
        capture_method: str = "automatic",
    ) -> Payment:
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "capture_method": capture_method,
            "confirm": True,
            "metadata": {"order_id": str(order_id)},
            "expand": EXPAND,
        }
        if description:
            params["description"] = description
        intent = self._request("create_payment_intent", "post", "/v1/payment_intents", params,
                               key=payment_key(order_id))  # fmt: skip
        return to_payment(intent)

    def retrieve_payment(self, payment_id: str) -> Payment:
        intent = self._request("retrieve_payment_intent", "get",
                               f"/v1/payment_intents/{_path_id(payment_id)}", {"expand": EXPAND})  # fmt: skip
        return to_payment(intent)

    def retrieve_refund(self, refund_id: str) -> Refund:
        refund = self._request("retrieve_refund", "get", f"/v1/refunds/{_path_id(refund_id)}", {})
        return to_refund(refund)

    def capture(self, payment_id: str, *, order_id: str, amount: int) -> Payment:
        params = {"amount_to_capture": amount, "expand": EXPAND}
        try:
            intent = self._request("capture_payment_intent", "post",
                                   f"/v1/payment_intents/{_path_id(payment_id)}/capture", params,
                                   key=capture_key(order_id))  # fmt: skip
        except PermanentProviderError as exc:
            if exc.code != "payment_intent_unexpected_state":
                raise
            return self.retrieve_payment(payment_id)  # captured, expired or cancelled
        return to_payment(intent)

    def find_payment(self, order_id: str) -> Payment | None:
        query = f"metadata['order_id']:'{order_id}'"
        result = self._call(
            "search_payment_intents",
            lambda: self._client.v1.payment_intents.search({"query": query, "limit": 10}),
        )
        intents = sorted(result.data, key=lambda intent: intent["created"], reverse=True)
        # read again with its charge (the deadline of an authorization is there)
        return self.retrieve_payment(intents[0]["id"]) if intents else None

    def cancel_payment(self, payment_id: str, *, order_id: str) -> Payment:
        current = self.retrieve_payment(payment_id)
        if current.status not in CANCELABLE:
            return current
        try:
            intent = self._request("cancel_payment_intent", "post",
                                   f"/v1/payment_intents/{_path_id(payment_id)}/cancel", {},
                                   key=cancel_key(order_id))  # fmt: skip
        except PermanentProviderError as exc:
            if exc.code != "payment_intent_unexpected_state":
                raise
            return self.retrieve_payment(payment_id)  # it moved on (paid) meanwhile
        return to_payment(intent)

    def refund(
        self,
        *,
        order_id: str,
        payment_id: str,
        amount: int | None = None,
        key: str | None = None,
    ) -> Refund:
        params: dict[str, Any] = {"payment_intent": payment_id,
                                  "metadata": {"order_id": str(order_id)}}  # fmt: skip
        if amount is not None:
            params["amount"] = amount
        try:
            refund = self._request("create_refund", "post", "/v1/refunds", params,
                                   key=key or refund_key(order_id))  # fmt: skip
        except PermanentProviderError as exc:
            # a refund under its own key is replayed by Stripe; only the whole-order key
            # of older refunds falls back to the refund already made
            if exc.code != "charge_already_refunded" or key is not None:
                raise
            existing = self._existing_refund(payment_id)
            if existing is None:
                raise
            return existing
        return to_refund(refund)

    def _existing_refund(self, payment_id: str) -> Refund | None:
        refunds = self._call(
            "list_refunds",
            lambda: self._client.v1.refunds.list({"payment_intent": payment_id, "limit": 10}),
        )
        done = [refund for refund in refunds.data if refund["status"] == "succeeded"]
        return to_refund(done[0]) if done else None

    def _request(self, operation: str, method: str, path: str, params: dict[str, Any], *,
                 key: str | None = None) -> dict[str, Any]:  # fmt: skip
        """One call's answer as plain data: the SDK's own request (encoding, headers,
        idempotency key, error mapping) without its objects, which ``to_payment`` and
        ``to_refund`` read back into dicts anyway (half a millisecond a PaymentIntent)."""
        options = {} if key is None else {"idempotency_key": key}
        return self._call(
            operation, lambda: self._client.raw_request(method, path, **params, **options).data
        )

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        return call_provider(fn, provider=PROVIDER, operation=operation, policy=self._policy)


def _path_id(stripe_id: str) -> str:
    """An object id as a path segment (the SDK's services quote it too)."""
    return quote(str(stripe_id), safe="")


def to_payment(obj: Any) -> Payment:
    intent = plain(obj)
    error = intent.get("last_payment_error") or {}
    metadata = intent.get("metadata") or {}
    charge = intent.get("latest_charge")
    card = ((charge.get("payment_method_details") or {}).get("card") or {}
            if isinstance(charge, dict) else {})  # fmt: skip
    deadline = card.get("capture_before")
    return Payment(
        id=intent["id"],
        status=intent["status"],
        amount=int(intent["amount"]),
        currency=intent["currency"],
        order_id=metadata.get("order_id"),
        latest_charge=_id_of(intent.get("latest_charge")),
        failure_code=error.get("decline_code") or error.get("code"),
        failure_message=error.get("message"),
        capture_method=intent.get("capture_method") or "automatic",
        amount_capturable=int(intent.get("amount_capturable") or 0),
        amount_received=int(intent.get("amount_received") or 0),
        capture_before=datetime.fromtimestamp(deadline, UTC) if deadline else None,
        client_secret=intent.get("client_secret")
        if intent["status"] == "requires_action"
        else None,
        next_action=intent.get("next_action"),
        cancellation_reason=intent.get("cancellation_reason"),
    )


def to_refund(obj: Any) -> Refund:
    refund = plain(obj)
    return Refund(
        id=refund["id"],
        payment_id=_id_of(refund.get("payment_intent")) or "",
        amount=int(refund["amount"]),
        currency=refund["currency"],
        status=refund["status"],
        failure_reason=refund.get("failure_reason"),
    )


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.get("id")


def build_stripe_gateway(
    settings: Settings,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> StripeGateway:
    """A gateway on the configured key and base URL (the sandbox or api.stripe.com)."""
    return StripeGateway(stripe_client(settings, timeout=timeout), policy=policy)
