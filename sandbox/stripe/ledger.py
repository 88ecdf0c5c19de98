"""Stripe's PaymentIntents in memory, with Stripe's semantics: test payment methods,
declines as 402 ``card_error``, 3-D Secure (``requires_action`` until the control API
says how the customer's authentication went), separate authorization and capture
(``capture_method=manual``, authorizations lapsing on the sandbox clock), Stripe's error
bodies, and events for what happened, sent to the webhook endpoints that subscribe to
them. Charges and refunds are ``sandbox.stripe.charges``'; refunds that settle later
(``pm_card_refundFail``, the fault ``refund_pending``) ``sandbox.stripe.refunds``'; Stripe
Tax's calculations and transactions ``sandbox.stripe.tax``'."""

from __future__ import annotations

import copy
import heapq
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.store import Store
from sandbox.stripe.cards import (
    authentication_failure,
    authentication_step,
    card_error,
    decline,
    known,
    next_action,
    refund_failure,
)
from sandbox.stripe.charges import Charges, amount_to_capture
from sandbox.stripe.endpoints import WebhookEndpoints
from sandbox.stripe.expand import expand_intent, expand_page
from sandbox.stripe.refunds import RefundSettlements, RefundTerms, plan
from sandbox.stripe.tax import TaxLedger
from sandbox.stripe.wire import (
    IdempotencyKeys,
    StripeFailure,
    invalid,
    list_page,
    new_payment_intent,
    no_such,
    not_capturable,
    search_page,
    unexpected_state,
)
from sandbox.wire import now_unix, truthy

#: How long a card authorization can be captured: 7 days for online card payments.
AUTHORIZATION_SECONDS = 7 * 24 * 3600
#: PaymentIntent statuses that allow cancel.
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
#: PaymentIntent statuses that allow confirm (a confirm while authentication is pending
#: asks for it again).
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
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
    def __init__(
        self,
        endpoints: WebhookEndpoints,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        authorization_seconds: float = AUTHORIZATION_SECONDS,
        search_lag: Callable[[], float] = lambda: 0.0,
        refund_terms: Callable[[], RefundTerms] = RefundTerms,
    ) -> None:
        self._store = store or Store()
        self.intents: dict[str, dict[str, Any]] = self._store.load("payment_intent")
        self.keys = IdempotencyKeys(self._store)
        #: The webhook endpoints, and every event (sent or not).
        self.endpoints = endpoints
        #: The charges and refunds behind the intents.
        self.book = Charges(
            endpoints.publish,
            store=self._store,
            clock=clock,
            authorization_seconds=authorization_seconds,
        )
        self._clock = clock
        self._search_lag = search_lag
        #: How each new refund goes (drawn once per refund request).
        self._refund_terms = refund_terms
        #: Refunds under way, settled on the sandbox clock.
        self.settlements = RefundSettlements(store=self._store, clock=clock)
        #: Stripe Tax's calculations and transactions.
        self.tax = TaxLedger(store=self._store, clock=clock)
        #: When each PaymentIntent created since the start shows in a search (sandbox
        #: clock); those loaded from the store are searchable already.
        self._searchable_at: dict[str, float] = {}
        #: Authorizations waiting for capture: (capture_before, intent id), soonest first.
        self._holds: list[tuple[int, str]] = []
        for intent in self.intents.values():  # back on the clock after a restart
            self._hold(intent)

    def _keep(self, intent: dict[str, Any]) -> dict[str, Any]:
        self._store.put("payment_intent", intent["id"], intent)
        return intent

    def _answer(self, intent: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        return expand_intent(intent, params, self.book.charges.get)

    # PaymentIntents ---------------------------------------------------------------

    def create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = new_payment_intent(params)
        confirm = truthy(params.get("confirm"))
        if confirm:
            self._check_confirmable(intent, params)
        self.intents[intent["id"]] = self._keep(intent)
        self._searchable_at[intent["id"]] = self._clock() + self._search_lag()
        if confirm:
            self._confirm(intent, params)
        return self._answer(intent, params)

    def confirm_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intent(intent_id)
        if intent["status"] not in CONFIRMABLE:
            raise unexpected_state(intent, "confirm", allowed=CONFIRMABLE)
        self._check_confirmable(intent, params)
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
        self._confirm(self._keep(intent), params)
        return self._answer(intent, params)

    def capture_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Capture an authorization, all of it or ``amount_to_capture``; the rest is
        released."""
        intent = self.intent(intent_id)
        if intent["status"] != "requires_capture":
            raise not_capturable(intent)
        amount = amount_to_capture(intent["amount_capturable"], params)
        self.book.capture(self.book.charges[intent["latest_charge"]], amount)
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self.endpoints.publish("payment_intent.succeeded", self._keep(intent))
        return self._answer(intent, params)

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
        if intent["status"] == "requires_capture":  # the authorization is voided
            self.book.void(self.book.charges[intent["latest_charge"]])
        self._cancel(intent, reason=reason, at=now_unix())
        return self._answer(intent, params)

    def _cancel(self, intent: dict[str, Any], *, reason: str | None, at: int) -> None:
        intent.update(
            status="canceled",
            canceled_at=at,
            cancellation_reason=reason,
            amount_capturable=0,
            next_action=None,
        )
        self.endpoints.publish("payment_intent.canceled", self._keep(intent))

    def authenticate(self, intent_id: str, *, complete: bool) -> dict[str, Any]:
        """How the customer's 3-D Secure went (the control API): completed, the payment
        goes on as a confirm without authentication would; failed, the intent wants
        another payment method."""
        intent = self.intent(intent_id)
        if intent["status"] != "requires_action":
            raise invalid(
                f"PaymentIntent {intent_id} is not waiting for authentication; its status "
                f"is {intent['status']}.",
                code="payment_intent_unexpected_state",
                status=409,
            )
        intent["next_action"] = None
        if complete:
            self._authorize(intent)
        else:
            error = authentication_failure(intent["payment_method"])
            intent.update(status="requires_payment_method", last_payment_error=error)
            self.endpoints.publish("payment_intent.payment_failed", self._keep(intent))
        return intent

    def intent(self, intent_id: str) -> dict[str, Any]:
        self.catch_up()
        if intent_id not in self.intents:
            raise no_such("payment_intent", intent_id, param="intent")
        return self.intents[intent_id]

    def retrieve_intent(self, intent_id: str, query: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer(self.intent(intent_id), query)

    def list_intents(self, query: Mapping[str, Any]) -> dict[str, Any]:
        self.catch_up()
        found = [
            i
            for i in self.intents.values()
            if not query.get("customer") or i["customer"] == query["customer"]
        ]
        page = list_page(found, query, url="/v1/payment_intents")
        return expand_page(page, query, self.book.charges.get)

    def search_intents(self, query: Mapping[str, Any]) -> dict[str, Any]:
        self.catch_up()
        now = self._clock()
        intents = [i for i in self.intents.values() if self._searchable_at.get(i["id"], 0) <= now]
        page = search_page(intents, query, url="/v1/payment_intents/search", fields=SEARCHABLE)
        return expand_page(page, query, self.book.charges.get)

    def _check_confirmable(self, intent: dict[str, Any], params: Mapping[str, Any]) -> None:
        method = params.get("payment_method") or intent["payment_method"]
        if not method:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        if not known(method):
            raise no_such("PaymentMethod", method, param="payment_method")
        automatic = intent["automatic_payment_methods"] or {}
        redirects = automatic.get("allow_redirects", "always")
        if automatic.get("enabled") and redirects != "never" and not params.get("return_url"):
            raise invalid(_REDIRECT_MESSAGE, param="return_url")

    def _confirm(self, intent: dict[str, Any], params: Mapping[str, Any]) -> None:
        """A card that asks for 3-D Secure waits for the customer; any other is charged."""
        step = authentication_step(intent["payment_method"])
        if step is None:
            self._authorize(intent)
            return
        action = next_action(intent, step, return_url=params.get("return_url"))
        intent.update(status="requires_action", next_action=action, last_payment_error=None)
        self.endpoints.publish("payment_intent.requires_action", self._keep(intent))

    def _authorize(self, intent: dict[str, Any]) -> None:
        """Charge the card: captured at once, or held for a manual capture."""
        method = intent["payment_method"]
        failure = decline(method)
        manual = intent["capture_method"] == "manual"
        charge = self.book.create(intent, failure=failure, capture=not manual)
        intent.update(latest_charge=charge["id"], next_action=None)
        if failure is None:
            intent["last_payment_error"] = None
            if manual:
                intent.update(status="requires_capture", amount_capturable=intent["amount"])
                self._hold(intent)
                kind = "payment_intent.amount_capturable_updated"
            else:
                intent.update(status="succeeded", amount_received=intent["amount"])
                kind = "payment_intent.succeeded"
            self.endpoints.publish(kind, self._keep(intent))
            return
        error = card_error(method, failure, charge_id=charge["id"])
        intent.update(status="requires_payment_method", last_payment_error=error)
        self.endpoints.publish("payment_intent.payment_failed", self._keep(intent))
        raise StripeFailure(402, {**error, "payment_intent": copy.deepcopy(intent)}, stored=True)

    # The clock ------------------------------------------------------------------------

    def catch_up(self) -> None:
        """What the sandbox clock has passed happens: authorizations lapse, refunds under
        way settle."""
        self.expire_due()
        self.settle_due()

    def _hold(self, intent: Mapping[str, Any]) -> None:
        deadline = self.book.capture_before(intent["latest_charge"])
        if intent["status"] == "requires_capture" and deadline is not None:
            heapq.heappush(self._holds, (deadline, intent["id"]))

    def expire_due(self) -> int:
        """Cancel every authorization whose ``capture_before`` has passed on the sandbox
        clock: ``charge.expired``, then ``payment_intent.canceled`` (reason
        ``automatic``). Returns how many lapsed."""
        now, lapsed = self._clock(), 0
        while self._holds and self._holds[0][0] <= now:
            deadline, intent_id = heapq.heappop(self._holds)
            intent = self.intents.get(intent_id)
            if intent is None or intent["status"] != "requires_capture":
                continue  # captured or cancelled meanwhile
            if self.book.capture_before(intent["latest_charge"]) != deadline:
                continue
            self.book.expire(self.book.charges[intent["latest_charge"]])
            self._cancel(intent, reason="automatic", at=int(now))
            lapsed += 1
        return lapsed

    # Refunds ------------------------------------------------------------------------

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        self.catch_up()
        charge = self._refundable_charge(params)
        terms = self._refund_terms()
        refund = self.book.create_refund(charge, params, terms=terms)
        planned = plan(terms, failure=refund_failure(charge["payment_method"]))
        if planned is not None:
            outcome, after = planned
            self.settlements.plan(refund["id"], outcome=outcome, after=after)
        return refund

    def refund(self, refund_id: str) -> dict[str, Any]:
        self.catch_up()
        return self.book.refund(refund_id)

    def list_refunds(self, query: Mapping[str, str]) -> dict[str, Any]:
        self.catch_up()
        return self.book.list_refunds(query)

    def settle_refund(self, refund_id: str, outcome: str) -> dict[str, Any]:
        """Settle a refund under way now (the control API); 409 for one that is final."""
        refund = self.refund(refund_id)
        if not self.settlements.under_way(refund_id):
            raise invalid(
                f"Refund {refund_id} is not under way; its status is {refund['status']}.",
                code="refund_unexpected_state",
                status=409,
            )
        self.settlements.take(refund_id)
        return self.book.settle_refund(refund, outcome)

    def settle_due(self) -> int:
        """Settle every refund under way whose time the sandbox clock has passed.
        Returns how many settled."""
        due = self.settlements.take_due()
        for refund_id, outcome in due:
            if refund_id in self.book.refunds:
                self.book.settle_refund(self.book.refunds[refund_id], outcome)
        return len(due)

    def _refundable_charge(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if params.get("charge"):
            if params["charge"] not in self.book.charges:
                raise no_such("charge", params["charge"], param="charge")
            return self.book.charges[params["charge"]]
        if not params.get("payment_intent"):
            raise invalid(
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
                code="parameter_missing",
            )
        intent = self.intents.get(params["payment_intent"])
        if intent is None:
            raise no_such("payment_intent", params["payment_intent"], param="payment_intent")
        if intent["status"] not in ("succeeded", "requires_capture"):
            raise invalid(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        return self.book.charges[intent["latest_charge"]]
