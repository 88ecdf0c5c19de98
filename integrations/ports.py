"""What the pipelines need from the outside world, as typed Protocols, and the small
results the gateways hand back (never SDK objects).

Idempotency is part of the contract: every method that has an effect derives its
provider-side key from the order and the step, so calling it again - after a crash, a
retry or a duplicate message - never produces a second effect (DESIGN.md, rule 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from fulfillment.shipping_options import ShippingRate


class NotificationKind(StrEnum):
    WELCOME = "welcome"
    ORDER_CONFIRMED = "order_confirmed"
    PAYMENT_FAILED = "payment_failed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    #: The carrier cannot deliver to the shipping address: the customer fixes it.
    ADDRESS_INVALID = "address_invalid"
    #: A single-use password reset link (one per request, so never de-duplicated away).
    PASSWORD_RESET = "password_reset"
    #: To the admins: a merchant's webhook endpoint was disabled after failing for days.
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    #: A return's prepaid label: the customer prints it and sends the goods back.
    RETURN_LABEL = "return_label"


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
    #: ``manual`` (authorize now, capture later) or ``automatic``.
    capture_method: str = "automatic"
    #: What may still be captured (an authorization), and what was captured.
    amount_capturable: int = 0
    amount_received: int = 0
    #: Stripe's deadline for capturing an authorization (the charge's card details).
    capture_before: datetime | None = None
    #: For ``requires_action``: what Stripe.js needs to let the customer authenticate.
    client_secret: str | None = None
    next_action: Mapping[str, Any] | None = None
    #: Why it was cancelled: ``automatic`` is Stripe letting an authorization expire.
    cancellation_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def authorized(self) -> bool:
        """The money is held on the card, waiting for its capture."""
        return self.status == "requires_capture"

    @property
    def needs_customer(self) -> bool:
        return self.status == "requires_action"


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_id: str
    amount: int
    currency: str
    #: ``succeeded``, or (Stripe settles some refunds later) ``pending`` or
    #: ``requires_action``; ``failed`` or ``canceled`` for good, even after a ``succeeded``
    status: str
    #: Why a failed refund failed (``expired_or_canceled_card``, ``lost_or_stolen_card``...)
    failure_reason: str | None = None

    @property
    def final(self) -> bool:
        return self.status in REFUND_FINAL

    @property
    def given_back(self) -> bool:
        """False once Stripe says the money did not reach the customer."""
        return self.status not in REFUND_LOST


#: Refund statuses Stripe does not move on from (a ``succeeded`` card refund may still
#: turn ``failed``: see ``REFUND_LOST``).
REFUND_FINAL = frozenset({"succeeded", "failed", "canceled"})
#: Refund statuses that mean the money was not given back.
REFUND_LOST = frozenset({"failed", "canceled"})


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
class ShippingService:
    """The carrier's service a customer paid for (an order placed on a quote's option),
    named as EasyPost names them: ``ShippingService("USPS", "Priority")``."""

    carrier: str
    service: str

    def __str__(self) -> str:
        return f"{self.carrier} {self.service}"


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


#: The key and value an operator's override writes into a shipping address
#: (``POST /v1/admin/orders/{id}/address-override``): the label is bought for it as it
#: is, without the carrier's verification.
AS_IS_KEY, AS_IS_VALUE = "verification", "operator_override"


def ships_as_is(address: Mapping[str, Any]) -> bool:
    return address.get(AS_IS_KEY) == AS_IS_VALUE


@dataclass(frozen=True, slots=True)
class AddressProblem:
    """One reason an address cannot be delivered to, as the carrier gave it."""

    code: str
    #: The field in our address shape (``line1``, ``postal_code``, or ``address``).
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class VerifiedAddress:
    """The carrier's verdict on an address."""

    deliverable: bool
    #: The address as the carrier corrected it (our shape), when deliverable.
    address: Mapping[str, Any] | None
    problems: tuple[AddressProblem, ...] = ()


class LabelRefundStatus(StrEnum):
    """EasyPost's ``refund_status`` of a shipment whose label is being voided."""

    SUBMITTED = "submitted"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class LiveLabel:
    """A bought label as the carrier holds it (``fulfillment verify``)."""

    shipment_id: str
    reference: str
    refund_status: str | None
    tracker_status: TrackerStatus


@dataclass(frozen=True, slots=True)
class KeptShipment:
    """The carrier shipment made for a reference, kept before it is bought, and a digest
    of the request it was made for (a corrected address makes another)."""

    shipment_id: str
    request_digest: str


class ShipmentLedger(Protocol):
    """Where the carrier keeps, durably and before it buys anything, the one shipment
    it made for a reference (an order id, ``return_<id>``): a later try, however late,
    finds that shipment by id instead of searching the carrier's lists, so a label is
    bought at most once and a stray one can be voided. Keeping commits at once."""

    def recall(self, reference: str) -> KeptShipment | None: ...

    def keep(self, reference: str, kept: KeptShipment) -> KeptShipment:
        """Keep ``kept`` unless the reference has a shipment already; answers the one
        kept."""
        ...

    def replace(self, reference: str, *, old: str, new: KeptShipment) -> KeptShipment:
        """Keep ``new`` in place of the unbought ``old``; answers the one kept."""
        ...


class PaymentGateway(Protocol):
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
        """Create and confirm a PaymentIntent (key ``order_<id>_payment``); a decline
        raises ``PermanentProviderError`` whose ``code`` is Stripe's decline code. With
        ``capture_method="manual"`` it only authorizes (``requires_capture``)."""
        ...

    def capture(self, payment_id: str, *, order_id: str, amount: int) -> Payment:
        """Capture an authorization once (key ``order_<id>_capture``); an intent that
        can no longer be captured (captured already, expired, cancelled) is returned as
        Stripe holds it, never refunded or captured again."""
        ...

    def retrieve_payment(self, payment_id: str) -> Payment: ...

    def retrieve_refund(self, refund_id: str) -> Refund:
        """The refund as Stripe holds it now (a pending one settles later)."""
        ...

    def find_payment(self, order_id: str) -> Payment | None:
        """The newest PaymentIntent whose ``metadata.order_id`` is ``order_id``."""
        ...

    def cancel_payment(self, payment_id: str, *, order_id: str) -> Payment: ...

    def refund(
        self,
        *,
        order_id: str,
        payment_id: str,
        amount: int | None = None,
        key: str | None = None,
    ) -> Refund:
        """Refund ``amount`` (what remains, when None) under ``key`` (default
        ``order_<id>_refund``); the same key twice returns the first refund."""
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
        dedup_key: str | None = None,
    ) -> SentMail:
        """Send one dynamic-template mail carrying its de-duplication key in custom_args
        (``dedup_key``, the notification's own, or else the one of (order or user, kind));
        SendGrid's events echo it, which ties them to the notification."""
        ...


class Carrier(Protocol):
    def ship(
        self,
        *,
        order_id: str,
        address: Mapping[str, Any],
        parcel: Parcel | None = None,
        service: ShippingService | None = None,
        lookup: bool = True,
        from_address: Mapping[str, Any] | None = None,
    ) -> Label:
        """Buy one label for the order (reference = order id), from ``from_address``
        (our address shape; None: the carrier's configured ship-from address); with
        ``lookup``, an earlier try's shipment is found and reused instead of buying a
        second. With ``service`` (the one the customer paid for) the label is of exactly
        that service, and ``ServiceNotOffered`` says the carrier no longer offers it for
        the parcel (nothing bought); without, of the cheapest rate."""
        ...

    def find_shipment(self, order_id: str) -> Label | None:
        """The label bought for the order (its kept shipment, if bought), or None."""
        ...

    def rates(
        self,
        *,
        address: Mapping[str, Any],
        parcel: Parcel,
        from_address: Mapping[str, Any] | None = None,
    ) -> list[ShippingRate]:
        """Every service the carriers offer for ``parcel`` to ``address`` (from the
        configured ship-from address, or ``from_address``), cheapest first; no effect."""
        ...

    def retrieve_tracker(self, tracker_id: str) -> Tracking: ...

    def find_tracker(self, tracking_code: str) -> Tracking | None: ...

    def verify_address(self, address: Mapping[str, Any]) -> VerifiedAddress:
        """Deliverable or not, corrected, with the problems by field; no effect."""
        ...

    def void_label(self, shipment_id: str) -> str:
        """Ask the carrier to refund a bought label, once; its ``LabelRefundStatus``."""
        ...

    def label_refund_status(self, shipment_id: str) -> str | None: ...

    def ship_return(
        self, *, return_id: str, address: Mapping[str, Any], parcel: Parcel | None = None
    ) -> Label:
        """Buy one return label (``is_return``: from the customer's ``address`` back to
        the warehouse), reference ``return_<id>``: a retry finds that shipment and buys
        no second label."""
        ...
