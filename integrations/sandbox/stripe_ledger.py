"""Stripe's PaymentIntents, Charges and Refunds in memory, with Stripe's semantics:
test payment methods, declines as 402 ``card_error``, Stripe's error bodies, and events
for what happened, sent to the webhook endpoints that subscribe to them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from integrations.sandbox.store import Store
from integrations.sandbox.stripe_endpoints import WebhookEndpoints
from integrations.sandbox.stripe_wire import (
    IdempotencyKeys,
    StripeFailure,
    amount_param,
    invalid,
    list_page,
    new_payment_intent,
    no_such,
    search_page,
    unexpected_state,
)
from integrations.sandbox.wire import new_id, now_unix, truthy

#: Stripe's test PaymentMethods: None succeeds, else (code, decline_code, message).
TEST_PAYMENT_METHODS: Mapping[str, tuple[str, str, str] | None] = {
    "pm_card_visa": None,
    "pm_card_mastercard": None,
    "pm_card_amex": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedFraudulent": ("card_declined", "fraudulent", "Your card was declined."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
}
#: PaymentIntent statuses that allow cancel.
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
#: PaymentIntent statuses that allow confirm.
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
#: The reasons Stripe accepts for a cancel.
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
#: Fields ``/v1/payment_intents/search`` understands.
SEARCHABLE = ("metadata", "status", "currency", "amount", "customer")
#: Stripe's refusal to confirm redirect-capable payment methods without a return_url.
_REDIRECT_MESSAGE = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, "
    "you must provide a `return_url`. If you don't want to accept redirect-based payment "
    "methods, set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents "
    "and Payment Intents."
)


class StripeLedger:
    def __init__(self, endpoints: WebhookEndpoints, *, store: Store | None = None) -> None:
        self._store = store or Store()
        self.intents: dict[str, dict[str, Any]] = self._store.load("payment_intent")
        self.charges: dict[str, dict[str, Any]] = self._store.load("charge")
        self.refunds: dict[str, dict[str, Any]] = self._store.load("refund")
        self.keys = IdempotencyKeys(self._store)
        #: The webhook endpoints, and every event (sent or not).
        self.endpoints = endpoints

    def _keep(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._store.put(kind, obj["id"], obj)
        return obj

    # PaymentIntents ---------------------------------------------------------------

    def create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = new_payment_intent(params)
        confirm = truthy(params.get("confirm"))
        if confirm:
            self._check_confirmable(intent, params)
        self.intents[intent["id"]] = self._keep("payment_intent", intent)
        return self._confirm(intent) if confirm else intent

    def confirm_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intent(intent_id)
        if intent["status"] not in CONFIRMABLE:
            raise unexpected_state(intent, "confirm", allowed=CONFIRMABLE)
        self._check_confirmable(intent, params)
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
        return self._confirm(self._keep("payment_intent", intent))

    def cancel_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intent(intent_id)
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise invalid(
                f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}",
                param="cancellation_reason",
            )
        if intent["status"] not in CANCELABLE:
            raise unexpected_state(intent, "cancel", allowed=CANCELABLE)
        intent.update(status="canceled", canceled_at=now_unix(), cancellation_reason=reason)
        self._keep("payment_intent", intent)
        self.endpoints.publish("payment_intent.canceled", intent)
        return intent

    def intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.intents:
            raise no_such("payment_intent", intent_id, param="intent")
        return self.intents[intent_id]

    def list_intents(self, query: Mapping[str, str]) -> dict[str, Any]:
        found = [
            i
            for i in self.intents.values()
            if not query.get("customer") or i["customer"] == query["customer"]
        ]
        return list_page(found, query, url="/v1/payment_intents")

    def search_intents(self, query: Mapping[str, str]) -> dict[str, Any]:
        intents = list(self.intents.values())
        return search_page(intents, query, url="/v1/payment_intents/search", fields=SEARCHABLE)

    def _check_confirmable(self, intent: dict[str, Any], params: Mapping[str, Any]) -> None:
        method = params.get("payment_method") or intent["payment_method"]
        if not method:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        if method not in TEST_PAYMENT_METHODS:
            raise no_such("PaymentMethod", method, param="payment_method")
        automatic = intent["automatic_payment_methods"] or {}
        redirects = automatic.get("allow_redirects", "always")
        if automatic.get("enabled") and redirects != "never" and not params.get("return_url"):
            raise invalid(_REDIRECT_MESSAGE, param="return_url")

    def _confirm(self, intent: dict[str, Any]) -> dict[str, Any]:
        method = intent["payment_method"]
        failure = TEST_PAYMENT_METHODS[method]
        charge = self._charge(intent, failure)
        intent["latest_charge"] = charge["id"]
        if failure is None:
            intent.update(
                status="succeeded", amount_received=intent["amount"], last_payment_error=None
            )
            self.endpoints.publish("payment_intent.succeeded", intent)
            return intent
        code, decline_code, message = failure
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": charge["id"],
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "payment_method": {"id": method, "object": "payment_method", "type": "card"},
        }
        intent.update(status="requires_payment_method", last_payment_error=error)
        self.endpoints.publish("payment_intent.payment_failed", intent)
        raise StripeFailure(402, {**error, "payment_intent": copy.deepcopy(intent)}, stored=True)

    def _charge(self, intent: dict[str, Any], failure: tuple[str, str, str] | None):
        paid = failure is None
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if paid else 0,
            "amount_refunded": 0,
            "captured": paid,
            "created": now_unix(),
            "currency": intent["currency"],
            "description": intent["description"],
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "paid": paid,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            "refunded": False,
            "status": "succeeded" if paid else "failed",
            "failure_code": None if paid else failure[0],
            "failure_message": None if paid else failure[2],
        }
        self.charges[charge["id"]] = self._keep("charge", charge)
        return charge

    # Refunds ------------------------------------------------------------------------

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        charge = self._refundable_charge(params)
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = amount_param(params) if params.get("amount") is not None else remaining
        if amount > remaining:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on "
                f"charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": now_unix(),
            "currency": charge["currency"],
            "metadata": dict(params.get("metadata") or {}),
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = self._keep("refund", refund)
        self._keep("charge", charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self.endpoints.publish("charge.refunded", charge)
        return refund

    def refund(self, refund_id: str) -> dict[str, Any]:
        if refund_id not in self.refunds:
            raise no_such("refund", refund_id, param="id")
        return self.refunds[refund_id]

    def list_refunds(self, query: Mapping[str, str]) -> dict[str, Any]:
        found = [
            r
            for r in self.refunds.values()
            if query.get("payment_intent") in (None, r["payment_intent"])
            and query.get("charge") in (None, r["charge"])
        ]
        return list_page(found, query, url="/v1/refunds")

    def _refundable_charge(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if params.get("charge"):
            if params["charge"] not in self.charges:
                raise no_such("charge", params["charge"], param="charge")
            return self.charges[params["charge"]]
        if not params.get("payment_intent"):
            raise invalid(
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
                code="parameter_missing",
            )
        intent = self.intents.get(params["payment_intent"])
        if intent is None:
            raise no_such("payment_intent", params["payment_intent"], param="payment_intent")
        if intent["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        return self.charges[intent["latest_charge"]]
