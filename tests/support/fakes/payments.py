"""The in-memory Stripe (``integrations.ports`` payments): PaymentIntents and refunds
replayed for a repeated idempotency key, a search that lags as Stripe's does, money
taken and given back counted apart from the calls made; safe from many threads."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from integrations.errors import PermanentProviderError
from integrations.ports import Payment, Refund
from tests.support.fakes.common import _Faults, _new_id, permanent, transient

#: A payment method whose charge Stripe leaves ``processing`` (as bank debits do).
PROCESSING_METHOD = "pm_processing"


#: What each test PaymentMethod does: ``succeeded``, ``processing``, or a decline code.
DEFAULT_OUTCOMES: Mapping[str, str] = {
    "pm_card_visa": "succeeded",
    "pm_card_mastercard": "succeeded",
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    PROCESSING_METHOD: "processing",
    "pm_card_authenticationRequired": "requires_action",
}


#: PaymentIntent statuses Stripe lets a client cancel from.
CANCELABLE = frozenset(
    {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action",
     "processing"}
)  # fmt: skip


#: Seconds before Stripe's search shows a new PaymentIntent. Stripe's search is not
#: read-after-write ("under normal operating conditions, data is searchable in under 1
#: minute"); a few seconds is what one usually sees. Tests that need search to find a
#: fresh intent say so: ``FakePayments(search_lag=0)`` or ``catch_up()``.
SEARCH_LAG_SECONDS = 5.0


class FakePayments:
    """Stripe PaymentIntents and Refunds. ``charge`` is keyed by order (Stripe's
    ``order_<id>_payment`` idempotency key): a repeat replays the first answer - the
    same PaymentIntent as it was then, or the same decline - and never charges twice;
    ``refund`` is keyed by order too. ``forget_idempotency_keys`` is Stripe pruning
    keys older than 24 hours. ``before[operation]`` runs at the start of that call,
    before anything is recorded, so a test can hold a call "in flight". ``find_payment``
    is Stripe's search: eventually consistent, it sees a PaymentIntent only
    ``search_lag`` seconds after its creation (``catch_up`` lets that time pass)."""

    def __init__(
        self, outcomes: Mapping[str, str] | None = None, *, search_lag: float = SEARCH_LAG_SECONDS
    ) -> None:
        self.outcomes = {**DEFAULT_OUTCOMES, **(outcomes or {})}
        #: Seconds before ``find_payment`` sees a new PaymentIntent (Stripe's search).
        self.search_lag = search_lag
        self._searchable_at: dict[str, float] = {}
        self.intents: dict[str, Payment] = {}
        self.refunds: dict[str, Refund] = {}  # the latest, by order id
        self.refund_keys: dict[str, Refund] = {}  # every refund, by idempotency key
        self.captures: dict[str, int] = {}  # captures made, by order id
        self.calls: Counter[str] = Counter()
        self.before: dict[str, Callable[[str], None]] = {}
        self._by_order: dict[str, list[str]] = {}
        self._replies: dict[str, Payment | PermanentProviderError] = {}
        self._faults = _Faults()
        self._lock = threading.Lock()
        #: What a new refund's status is, as Stripe answers it: ``succeeded``, or
        #: ``pending`` (Stripe settles it later: see ``settle_refund_later``).
        self.refund_status = "succeeded"
        self._refunds_by_id: dict[str, Refund] = {}

    def fail_next(self, operation: str, error: BaseException, *, times: int = 1) -> None:
        with self._lock:
            self._faults.fail_next(operation, error, times=times)

    def lose_next(self, operation: str, *, times: int = 1) -> None:
        """The next ``operation`` takes effect, but its caller sees a timeout."""
        with self._lock:
            self._faults.lose_next(operation, times=times)

    def forget_idempotency_keys(self) -> None:
        """A day has passed: Stripe has pruned the charge keys (refunds stay refunded)."""
        with self._lock:
            self._replies.clear()

    # PaymentGateway ---------------------------------------------------------------

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
        self._before("charge", order_id)
        with self._lock:
            self.calls["charge"] += 1
            self._faults.check("charge")
            if order_id in self._replies:  # the idempotency key replays the first answer
                return self._replay(self._replies[order_id])
            outcome = self.outcomes.get(payment_method)
            if outcome is None:
                raise permanent("stripe", "create_payment_intent", "resource_missing")
            status = (
                outcome if outcome in ("succeeded", "processing", "requires_action")
                else "requires_payment_method"
            )  # fmt: skip
            manual = capture_method == "manual"
            if status == "succeeded" and manual:
                status = "requires_capture"
            intent = Payment(
                id=_new_id("pi"), status=status, amount=amount, currency=currency.lower(),
                order_id=order_id, latest_charge=_new_id("ch"),
                failure_code=None if status != "requires_payment_method" else outcome,
                failure_message=None if status != "requires_payment_method" else "declined",
                capture_method=capture_method,
                amount_capturable=amount if status == "requires_capture" else 0,
                amount_received=amount if status == "succeeded" else 0,
                capture_before=(datetime.now(UTC) + timedelta(days=7)
                                if status == "requires_capture" else None),
                client_secret=f"{order_id}_secret" if status == "requires_action" else None,
                next_action={"type": "use_stripe_sdk"} if status == "requires_action" else None,
            )  # fmt: skip
            self._record(intent)
            self._replies[order_id] = intent
            if status == "requires_payment_method":
                self._replies[order_id] = PermanentProviderError(
                    "Your card was declined.", provider="stripe",
                    operation="create_payment_intent", code=outcome, http_status=402,
                    details={"payment_intent": intent.id},
                )  # fmt: skip
            if self._faults.answer_lost("charge"):
                raise transient("stripe", "create_payment_intent")
            return self._replay(self._replies[order_id])

    def retrieve_payment(self, payment_id: str) -> Payment:
        self._before("retrieve_payment", payment_id)
        with self._lock:
            self.calls["retrieve_payment"] += 1
            self._faults.check("retrieve_payment")
            return self._intent(payment_id)

    def find_payment(self, order_id: str) -> Payment | None:
        self._before("find_payment", order_id)
        with self._lock:
            self.calls["find_payment"] += 1
            self._faults.check("find_payment")
            now = time.monotonic()
            ids = [i for i in self._by_order.get(order_id, ()) if self._searchable_at[i] <= now]
            return self.intents[ids[-1]] if ids else None

    def cancel_payment(self, payment_id: str, *, order_id: str) -> Payment:
        self._before("cancel_payment", payment_id)
        with self._lock:
            self.calls["cancel_payment"] += 1
            self._faults.check("cancel_payment")
            intent = self._intent(payment_id)
            if intent.status not in CANCELABLE:
                return intent  # it moved on meanwhile: the gateway answers where it stands
            self.intents[payment_id] = replace(intent, status="canceled")
            return self.intents[payment_id]

    def capture(self, payment_id: str, *, order_id: str, amount: int) -> Payment:
        self._before("capture", order_id)
        with self._lock:
            self.calls["capture"] += 1
            self._faults.check("capture")
            intent = self._intent(payment_id)
            if intent.status != "requires_capture":
                return intent  # captured, expired or cancelled: as Stripe holds it
            self.captures[order_id] = self.captures.get(order_id, 0) + 1
            self.intents[payment_id] = replace(intent, status="succeeded", amount_capturable=0,
                                               amount_received=amount)  # fmt: skip
            if self._faults.answer_lost("capture"):
                raise transient("stripe", "capture_payment_intent")
            return self.intents[payment_id]

    def refund(
        self,
        *,
        order_id: str,
        payment_id: str,
        amount: int | None = None,
        key: str | None = None,
    ) -> Refund:
        self._before("refund", order_id)
        key = key or f"order_{order_id}_refund"
        with self._lock:
            self.calls["refund"] += 1
            self._faults.check("refund")
            if key in self.refund_keys:
                return self.refund_keys[key]
            intent = self._intent(payment_id)
            if not intent.succeeded:
                raise permanent("stripe", "create_refund", "charge_not_refundable")
            given = sum(r.amount for r in self.refund_keys.values() if r.payment_id == payment_id)
            left = intent.amount_received - given
            amount = left if amount is None else amount
            if amount > left or amount <= 0:
                raise permanent("stripe", "create_refund", "amount_too_large")
            refund = Refund(id=_new_id("re"), payment_id=payment_id, amount=amount,
                            currency=intent.currency, status=self.refund_status)  # fmt: skip
            self.refund_keys[key] = self.refunds[order_id] = refund
            self._refunds_by_id[refund.id] = refund
            if self._faults.answer_lost("refund"):
                raise transient("stripe", "create_refund")
            return refund

    def retrieve_refund(self, refund_id: str) -> Refund:
        with self._lock:
            self.calls["retrieve_refund"] += 1
            self._faults.check("retrieve_refund")
            if refund_id not in self._refunds_by_id:
                raise permanent("stripe", "retrieve_refund", "resource_missing")
            return self._refunds_by_id[refund_id]

    # What the provider's side shows -------------------------------------------------

    def settle_refund_later(self, refund_id: str, status: str,
                            failure_reason: str | None = None) -> None:  # fmt: skip
        """Stripe moves a refund on after its call answered: a pending one settles, or
        one fails even after it had succeeded (a closed card). The idempotency key still
        replays the first answer, as Stripe's does."""
        with self._lock:
            refund = self._refunds_by_id[refund_id]
            self._refunds_by_id[refund_id] = replace(
                refund, status=status, failure_reason=failure_reason
            )

    def complete(self, payment_id: str, *, status: str = "succeeded") -> Payment:
        """A ``processing`` PaymentIntent finishes (Stripe would now send a webhook)."""
        with self._lock:
            intent = self._intent(payment_id)
            if status == "succeeded" and intent.capture_method == "manual":
                status = "requires_capture"
            self.intents[payment_id] = replace(
                intent, status=status, client_secret=None, next_action=None,
                amount_received=intent.amount if status == "succeeded" else 0,
                amount_capturable=intent.amount if status == "requires_capture" else 0,
                capture_before=(datetime.now(UTC) + timedelta(days=7)
                                if status == "requires_capture" else None),
            )  # fmt: skip
            return self.intents[payment_id]

    def catch_up(self) -> None:
        """Stripe's search index has caught up: every PaymentIntent is searchable."""
        with self._lock:
            self._searchable_at = dict.fromkeys(self._searchable_at, 0.0)

    def payments_for(self, order_id: str) -> list[Payment]:
        with self._lock:
            return [self.intents[i] for i in self._by_order.get(order_id, [])]

    @property
    def money_taken(self) -> list[Payment]:
        """Every PaymentIntent that took money: the number of real charges."""
        with self._lock:
            return [intent for intent in self.intents.values() if intent.succeeded]

    def _before(self, operation: str, key: str) -> None:
        hook = self.before.get(operation)
        if hook is not None:
            hook(key)

    @staticmethod
    def _replay(reply: Payment | PermanentProviderError) -> Payment:
        if isinstance(reply, PermanentProviderError):
            raise reply
        return reply

    def _record(self, intent: Payment) -> None:
        self.intents[intent.id] = intent
        self._by_order.setdefault(str(intent.order_id), []).append(intent.id)
        self._searchable_at[intent.id] = time.monotonic() + self.search_lag

    def _intent(self, payment_id: str) -> Payment:
        if payment_id not in self.intents:
            raise permanent("stripe", "retrieve_payment_intent", "resource_missing")
        return self.intents[payment_id]
