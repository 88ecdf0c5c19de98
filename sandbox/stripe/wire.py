"""Stripe's wire conventions for the sandbox: error bodies, parameter checks, list and
search pages, and idempotency keys (the same key and parameters replay the stored
answer; the same key with other parameters, or on another endpoint, is refused)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.store import Store
from sandbox.wire import new_id, now_unix, parse_query, truthy

#: Seconds Stripe keeps an idempotency key.
IDEMPOTENCY_TTL = 24 * 3600
#: The ``capture_method`` values Stripe takes (``automatic_async`` captures as automatic).
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
#: Smallest charge per currency, in minor units, as Stripe enforces it.
MINIMUM_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "jpy": 50}


class StripeFailure(Exception):
    """An error answer; ``stored`` ones (the API ran) are kept under the idempotency key."""

    def __init__(self, status: int, error: dict[str, Any], *, stored: bool = False) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.body = {"error": error}
        self.stored = stored


def invalid(
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    status: int = 400,
    kind: str = "invalid_request_error",
) -> StripeFailure:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return StripeFailure(status, error)


def no_such(kind: str, object_id: str, *, param: str) -> StripeFailure:
    return invalid(
        f"No such {kind}: '{object_id}'", code="resource_missing", param=param, status=404
    )


@dataclass(frozen=True, slots=True)
class Stored:
    method: str
    path: str
    fingerprint: str
    status: int
    body: dict[str, Any]
    request_id: str
    created: float


class IdempotencyKeys:
    """Answers kept per ``Idempotency-Key`` for 24 hours."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store or Store()
        self._stored = {
            key: Stored(**fields) for key, fields in self._store.load("idempotency_key").items()
        }

    def replay(self, key: str | None, *, method: str, path: str, params: Any) -> Stored | None:
        """The stored answer to replay, None to go ahead, or a 400 ``idempotency_error``."""
        stored = self._stored.get(key) if key else None
        if stored is None or time.time() - stored.created > IDEMPOTENCY_TTL:
            return None
        if (stored.method, stored.path) != (method, path):
            raise invalid(
                "Keys for idempotent requests can only be used for the same endpoint they "
                f"were first used for ('{stored.path}' vs '{path}'). Try using a key other "
                f"than '{key}' if you meant to execute a different request.",
                kind="idempotency_error",
            )
        if stored.fingerprint != fingerprint(params):
            raise invalid(
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.",
                kind="idempotency_error",
            )
        return stored

    def remember(self, key: str, stored: Stored) -> None:
        self._stored[key] = stored
        self._store.put("idempotency_key", key, dataclasses.asdict(stored))


def new_payment_intent(params: Mapping[str, Any]) -> dict[str, Any]:
    """A PaymentIntent as ``POST /v1/payment_intents`` creates it, before any confirm."""
    amount, currency = amount_param(params), currency_param(params)
    methods = params.get("payment_method_types")
    automatic = params.get("automatic_payment_methods")
    if methods and automatic:
        raise invalid(
            "You may only specify one of these parameters: "
            "automatic_payment_methods, payment_method_types."
        )
    if not methods and not automatic:
        automatic = {"enabled": "true"}  # the default since API version 2023-08-16
    intent_id = new_id("pi")
    method = params.get("payment_method")
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": 0,
        "currency": currency,
        "automatic_payment_methods": automatic_param(automatic),
        "payment_method_types": list(methods or ["card"]),
        "capture_method": capture_method_param(params),
        "confirmation_method": "automatic",
        "client_secret": f"{intent_id}_secret_{new_id('s')[2:]}",
        "created": now_unix(),
        "customer": params.get("customer"),
        "description": params.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": dict(params.get("metadata") or {}),
        "next_action": None,
        "payment_method": method,
        "receipt_email": params.get("receipt_email"),
        "canceled_at": None,
        "cancellation_reason": None,
        "status": "requires_confirmation" if method else "requires_payment_method",
    }


def fingerprint(params: Any) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def amount_param(params: Mapping[str, Any]) -> int:
    raw = params.get("amount")
    if raw in (None, ""):
        raise invalid("Missing required param: amount.", code="parameter_missing", param="amount")
    try:
        amount = int(raw)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {raw}", code="parameter_invalid_integer", param="amount"
        ) from None
    currency = str(params.get("currency") or "").lower()
    minimum = MINIMUM_AMOUNTS.get(currency, 1)
    if amount < minimum:
        raise invalid(
            f"Amount must be at least {minimum} {currency or 'minor units'}",
            code="amount_too_small",
            param="amount",
        )
    return amount


def capture_method_param(params: Mapping[str, Any]) -> str:
    """``automatic`` (the default) captures on confirm; ``manual`` only authorizes."""
    method = str(params.get("capture_method") or "automatic")
    if method not in CAPTURE_METHODS:
        raise invalid(
            "Invalid capture_method: must be one of automatic, automatic_async, or manual",
            param="capture_method",
        )
    return method


def currency_param(params: Mapping[str, Any]) -> str:
    currency = str(params.get("currency") or "").lower()
    if not currency:
        raise invalid(
            "Missing required param: currency.", code="parameter_missing", param="currency"
        )
    if len(currency) != 3 or not currency.isalpha():
        raise invalid(
            f"Invalid currency: {currency}.", code="parameter_invalid_string", param="currency"
        )
    return currency


def automatic_param(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    return {
        "enabled": truthy(value.get("enabled")),
        "allow_redirects": value.get("allow_redirects", "always"),
    }


def unexpected_state(intent: Mapping[str, Any], action: str, *, allowed: tuple[str, ...]):
    return invalid(
        f"You cannot {action} this PaymentIntent because it has a status of "
        f"{intent['status']}. Only a PaymentIntent with one of the following "
        f"statuses may be {action}ed: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
    )


def not_capturable(intent: Mapping[str, Any]) -> StripeFailure:
    """Stripe's refusal to capture anything but an authorization waiting for capture."""
    return invalid(
        f"This PaymentIntent could not be captured because it has a status of "
        f"{intent['status']}. Only a PaymentIntent with one of the following statuses may "
        "be captured: requires_capture.",
        code="payment_intent_unexpected_state",
    )


def limit_param(query: Mapping[str, str]) -> int:
    try:
        limit = int(query.get("limit") or 10)
    except ValueError:
        raise invalid("Invalid integer: limit", param="limit") from None
    if not 1 <= limit <= 100:
        raise invalid("This value must be between 1 and 100.", param="limit")
    return limit


def list_page(items: list[dict[str, Any]], query: Mapping[str, str], *, url: str):
    """A Stripe list object, newest first, with ``starting_after``/``ending_before``."""
    newest_first = list(reversed(items))
    ids = [item["id"] for item in newest_first]
    if query.get("starting_after") in ids:
        newest_first = newest_first[ids.index(query["starting_after"]) + 1 :]
    elif query.get("ending_before") in ids:
        newest_first = newest_first[: ids.index(query["ending_before"])]
    limit = limit_param(query)
    return {
        "object": "list",
        "data": newest_first[:limit],
        "has_more": len(newest_first) > limit,
        "url": url,
    }


def search_page(
    items: list[dict[str, Any]], query: Mapping[str, str], *, url: str, fields: tuple[str, ...]
) -> dict[str, Any]:
    """A Stripe search result for ``query["query"]`` over ``items``, newest first."""
    try:
        clauses = parse_query(query.get("query", ""))
    except ValueError as exc:
        raise invalid(f"Invalid search query: {exc}", param="query") from None
    for field, _, _ in clauses:
        if field not in fields:
            raise invalid(f"Field '{field}' is an unsupported search field.", param="query")
    found = [item for item in reversed(items) if all(_matches(item, c) for c in clauses)]
    limit = limit_param(query)
    start = int(query.get("page") or 0)
    more = start + limit < len(found)
    return {
        "object": "search_result",
        "data": found[start : start + limit],
        "has_more": more,
        "next_page": str(start + limit) if more else None,
        "url": url,
        "total_count": len(found),
    }


def _matches(item: Mapping[str, Any], clause: tuple[str, str | None, str]) -> bool:
    field, key, value = clause
    if field == "metadata":
        return str((item.get("metadata") or {}).get(key or "")) == value
    return str(item.get(field)) == value
