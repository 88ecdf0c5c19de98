"""In-memory doubles of the three provider ports (``integrations.ports``) for tests that
call the pipeline steps directly.

They keep what the real providers keep and honour idempotency the way the real ones do:
Stripe replays a PaymentIntent or a refund for a repeated idempotency key (derived from
the order), EasyPost finds the label already bought for a shipment reference, and
SendGrid - which has no keys - accepts every send, so a duplicate e-mail shows up
as a second entry in ``FakeMailer.sent``. Each counts its real effects (money taken,
refunds, labels bought, mails accepted) separately from the calls made, and each is
safe to call from many threads at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.errors import PermanentProviderError, ProviderError, TransientProviderError
from integrations.ports import (
    Label,
    NotificationKind,
    Parcel,
    Payment,
    Refund,
    SentMail,
    TrackerStatus,
    Tracking,
)

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

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):06d}"


class _Faults:
    """Faults queued per operation: errors raised before the provider acts
    (``fail_next``), and answers lost after it acted (``lose_next``: the call times
    out, but the effect happened, as when a response is lost on the way back)."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException]] = {}
        self._lost: Counter[str] = Counter()

    def fail_next(self, operation: str, error: BaseException, *, times: int = 1) -> None:
        self._queued.setdefault(operation, []).extend([error] * times)

    def lose_next(self, operation: str, *, times: int = 1) -> None:
        self._lost[operation] += times

    def check(self, operation: str) -> None:
        queued = self._queued.get(operation)
        if queued:
            raise queued.pop(0)

    def answer_lost(self, operation: str) -> bool:
        if self._lost[operation] <= 0:
            return False
        self._lost[operation] -= 1
        return True


def transient(provider: str, operation: str) -> TransientProviderError:
    return TransientProviderError(
        "service unavailable", provider=provider, operation=operation, http_status=503
    )


def permanent(provider: str, operation: str, code: str) -> PermanentProviderError:
    return PermanentProviderError(
        f"refused: {code}", provider=provider, operation=operation, code=code, http_status=400
    )


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
                            currency=intent.currency, status="succeeded")  # fmt: skip
            self.refund_keys[key] = self.refunds[order_id] = refund
            if self._faults.answer_lost("refund"):
                raise transient("stripe", "create_refund")
            return refund

    # What the provider's side shows -------------------------------------------------

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


@dataclass(frozen=True)
class Mail:
    """One mail SendGrid accepted."""

    kind: str
    to_email: str
    to_name: str | None
    order_id: str | None
    user_id: str | None
    data: dict[str, Any]
    dedup_key: str
    message_id: str


class FakeMailer:
    """SendGrid's Mail Send: every accepted send is one e-mail (SendGrid has no
    idempotency keys; the steps must not send twice). ``fail_next`` makes the next
    sends raise, e.g. ``transient("sendgrid", "send_mail")``."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.calls = 0
        self._faults = _Faults()
        self._lock = threading.Lock()

    def fail_next(self, error: ProviderError, *, times: int = 1) -> None:
        with self._lock:
            self._faults.fail_next("send_mail", error, times=times)

    def send(
        self,
        kind: NotificationKind | str,
        *,
        to_email: str,
        to_name: str | None = None,
        order_id: str | None = None,
        user_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        dedup_key: str | None = None,
    ) -> SentMail:
        kind = NotificationKind(kind)
        owner = f"order_{order_id}" if order_id is not None else f"user_{user_id}"
        with self._lock:
            self.calls += 1
            self._faults.check("send_mail")
            mail = Mail(kind=kind.value, to_email=to_email, to_name=to_name, order_id=order_id,
                        user_id=user_id, data=dict(data or {}),
                        dedup_key=dedup_key or f"{owner}_{kind.value}",
                        message_id=_new_id("msg"))  # fmt: skip
            self.sent.append(mail)
        return SentMail(message_id=mail.message_id, kind=kind, dedup_key=mail.dedup_key)

    def kinds(self, *, order_id: str | None = None, user_id: str | None = None) -> list[str]:
        """The kinds of mail sent about an order (or to a user), in sending order."""
        with self._lock:
            return [
                mail.kind
                for mail in self.sent
                if (order_id is None or mail.order_id == str(order_id))
                and (user_id is None or mail.user_id == str(user_id))
            ]


class FakeCarrier:
    """EasyPost shipments and trackers. One label per shipment reference (the order
    id): buying again returns the label already bought, however late - the port's
    contract, which the gateway keeps with its ``ShipmentLedger`` (EasyPost itself
    cannot be searched by reference). Addresses whose postal code is
    in ``invalid_postal_codes`` are refused as EasyPost refuses an unverifiable one."""

    def __init__(self, *, invalid_postal_codes: frozenset[str] = frozenset({"00000"})) -> None:
        self.invalid_postal_codes = set(invalid_postal_codes)
        self.labels: dict[str, Label] = {}  # by reference
        self.parcels: dict[str, Parcel | None] = {}
        self.trackers: dict[str, Tracking] = {}  # by tracker id
        self.calls: Counter[str] = Counter()
        self.lookups: list[bool] = []  # whether each ship() asked to look for an earlier try
        self._faults = _Faults()
        self._lock = threading.Lock()

    def fail_next(self, operation: str, error: BaseException, *, times: int = 1) -> None:
        with self._lock:
            self._faults.fail_next(operation, error, times=times)

    def lose_next(self, operation: str, *, times: int = 1) -> None:
        """The next ``operation`` takes effect, but its caller sees a timeout."""
        with self._lock:
            self._faults.lose_next(operation, times=times)

    def ship(
        self,
        *,
        order_id: str,
        address: Mapping[str, Any],
        parcel: Parcel | None = None,
        rate_id: str | None = None,
        lookup: bool = True,
    ) -> Label:
        reference = str(order_id)
        with self._lock:
            self.calls["ship"] += 1
            self.lookups.append(lookup)
            self._faults.check("ship")
            if reference in self.labels:
                return self.labels[reference]
            if str(address.get("postal_code")) in self.invalid_postal_codes:
                raise permanent("easypost", "create_shipment", "ADDRESS.VERIFY.FAILURE")
            shipment_id, tracker_id = _new_id("shp"), _new_id("trk")
            code = f"EZ{next(_ids):010d}"
            label = Label(
                shipment_id=shipment_id, reference=reference, tracking_code=code,
                label_url=f"https://labels.example.com/{shipment_id}.png", tracker_id=tracker_id,
                carrier="USPS", service="Priority", rate="7.58", currency="USD",
            )  # fmt: skip
            self.labels[reference] = label
            self.parcels[reference] = parcel
            self.trackers[tracker_id] = Tracking(
                id=tracker_id, tracking_code=code, status=TrackerStatus.PRE_TRANSIT,
                status_detail=None, shipment_id=shipment_id, carrier="USPS",
            )  # fmt: skip
            if self._faults.answer_lost("ship"):
                raise transient("easypost", "buy_shipment")
            return label

    def find_shipment(self, order_id: str) -> Label | None:
        with self._lock:
            self.calls["find_shipment"] += 1
            return self.labels.get(str(order_id))

    def retrieve_tracker(self, tracker_id: str) -> Tracking:
        with self._lock:
            self.calls["retrieve_tracker"] += 1
            self._faults.check("retrieve_tracker")
            if tracker_id not in self.trackers:
                raise permanent("easypost", "retrieve_tracker", "NOT_FOUND")
            return self.trackers[tracker_id]

    def find_tracker(self, tracking_code: str) -> Tracking | None:
        with self._lock:
            self.calls["find_tracker"] += 1
            found = [t for t in self.trackers.values() if t.tracking_code == tracking_code]
            return found[0] if found else None

    def ship_return(
        self, *, return_id: str, address: Mapping[str, Any], parcel: Parcel | None = None
    ) -> Label:
        """A return's label, one per reference ``return_<id>`` (as EasyPost's lookup
        finds it); ``self.returns`` keeps the address each was bought from."""
        reference = f"return_{return_id}"
        with self._lock:
            self.calls["ship_return"] += 1
            self._faults.check("ship_return")
            if reference not in self.labels:
                shipment_id = _new_id("shp")
                self.labels[reference] = Label(
                    shipment_id=shipment_id, reference=reference,
                    tracking_code=f"EZ{next(_ids):010d}",
                    label_url=f"https://labels.example.com/{shipment_id}.png", tracker_id=None,
                    carrier="USPS", service="Priority", rate="7.58", currency="USD",
                )  # fmt: skip
                self.parcels[reference] = parcel
            if self._faults.answer_lost("ship_return"):
                raise transient("easypost", "buy_shipment")
            return self.labels[reference]

    def move_tracker(self, tracking_code: str, status: TrackerStatus) -> Tracking:
        """The parcel moves on (EasyPost would now send ``tracker.updated``)."""
        with self._lock:
            tracker = next(t for t in self.trackers.values() if t.tracking_code == tracking_code)
            self.trackers[tracker.id] = replace(tracker, status=status)
            return self.trackers[tracker.id]

    @property
    def labels_bought(self) -> int:
        with self._lock:
            return len(self.labels)
