"""What the pipelines need from the outside world, as typed Protocols, and the small
results the gateways hand back (never SDK objects).

Idempotency is part of the contract: every method that has an effect derives its
provider-side key from the order and the step, so calling it again - after a crash, a
retry or a duplicate message - never produces a second effect (DESIGN.md, rule 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class NotificationKind(StrEnum):
    WELCOME = "welcome"
    ORDER_CONFIRMED = "order_confirmed"
    PAYMENT_FAILED = "payment_failed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class TrackerStatus(StrEnum):
    """EasyPost's tracker statuses."""

    UNKNOWN = "unknown"
    PRE_TRANSIT = "pre_transit"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    RETURN_TO_SENDER = "return_to_sender"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Payment:
    """A Stripe PaymentIntent, reduced to what the order saga looks at."""

    id: str
    status: str
    amount: int
    currency: str
    order_id: str | None
    latest_charge: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_id: str
    amount: int
    currency: str
    status: str


@dataclass(frozen=True, slots=True)
class SentMail:
    message_id: str | None
    kind: NotificationKind
    dedup_key: str


@dataclass(frozen=True, slots=True)
class Parcel:
    """Weight in ounces and dimensions in inches, as EasyPost takes them."""

    weight_oz: float = 16.0
    length_in: float | None = None
    width_in: float | None = None
    height_in: float | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """A bought shipment: what the customer needs to follow it."""

    shipment_id: str
    reference: str
    tracking_code: str
    label_url: str
    tracker_id: str | None
    carrier: str
    service: str
    rate: str
    currency: str


@dataclass(frozen=True, slots=True)
class Tracking:
    id: str
    tracking_code: str
    status: TrackerStatus
    status_detail: str | None
    shipment_id: str | None
    carrier: str | None
    est_delivery_date: str | None = None


class PaymentGateway(Protocol):
    def charge(
        self,
        *,
        order_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        description: str | None = None,
    ) -> Payment:
        """Create and confirm a PaymentIntent (key ``order_<id>_payment``); a decline
        raises ``PermanentProviderError`` whose ``code`` is Stripe's decline code."""
        ...

    def retrieve_payment(self, payment_id: str) -> Payment: ...

    def find_payment(self, order_id: str) -> Payment | None:
        """The newest PaymentIntent whose ``metadata.order_id`` is ``order_id``."""
        ...

    def cancel_payment(self, payment_id: str, *, order_id: str) -> Payment: ...

    def refund(self, *, order_id: str, payment_id: str) -> Refund:
        """Refund in full (key ``order_<id>_refund``); refunding twice returns the first."""
        ...


class Mailer(Protocol):
    def send(
        self,
        kind: NotificationKind | str,
        *,
        to_email: str,
        to_name: str | None = None,
        order_id: str | None = None,
        user_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> SentMail:
        """Send one dynamic-template mail carrying its de-duplication key in custom_args."""
        ...


class Carrier(Protocol):
    def ship(
        self,
        *,
        order_id: str,
        address: Mapping[str, Any],
        parcel: Parcel | None = None,
        rate_id: str | None = None,
        lookup: bool = True,
    ) -> Label:
        """Buy one label for the order (reference = order id); with ``lookup``, an
        earlier try's shipment is found and reused instead of buying a second."""
        ...

    def find_shipment(self, order_id: str) -> Label | None: ...

    def retrieve_tracker(self, tracker_id: str) -> Tracking: ...

    def find_tracker(self, tracking_code: str) -> Tracking | None: ...
