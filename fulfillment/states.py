"""The order state machine: which status may follow which. Pure, no I/O.

State only moves forward along the happy path; side exits are terminal except
``needs_attention``, which resumes where the order stopped once a dead letter is
redriven.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    #: The card needs the customer (3-D Secure): the storefront completes it with Stripe.js.
    REQUIRES_ACTION = "requires_action"
    PAYMENT_PENDING = "payment_pending"
    #: The money is held on the card (``PAYMENT_CAPTURE=shipment``); it is captured
    #: when the goods ship.
    AUTHORIZED = "authorized"
    PAID = "paid"
    FULFILLING = "fulfilling"
    #: Some of its packages have shipped, not all (an order taken from several
    #: locations: ``fulfillment.packages``); the rest are being bought.
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    #: Every package has shipped and some, not all, have been delivered.
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    NEEDS_ATTENTION = "needs_attention"
    #: An operator stopped the saga (``POST /v1/admin/orders/{id}/hold``); only a release
    #: moves it on, back to the status it was held from (``orders.held_from``).
    ON_HOLD = "on_hold"
    #: The carrier cannot deliver to the shipping address: waiting for the customer to
    #: fix it (``PATCH /v1/orders/{id}/shipping_address``) or an operator's override;
    #: both send it back to ``fulfilling``.
    ADDRESS_INVALID = "address_invalid"


S = OrderStatus

#: The happy path, in order. An order never moves to an earlier entry.
HAPPY_PATH: tuple[OrderStatus, ...] = (
    S.PENDING,
    S.RESERVED,
    S.PAYMENT_PENDING,
    S.REQUIRES_ACTION,
    S.AUTHORIZED,
    S.PAID,
    S.FULFILLING,
    S.PARTIALLY_SHIPPED,
    S.SHIPPED,
    S.IN_TRANSIT,
    S.PARTIALLY_DELIVERED,
    S.DELIVERED,
)

#: States no step moves an order out of.
TERMINAL: frozenset[OrderStatus] = frozenset({S.DELIVERED, S.REJECTED, S.CANCELLED, S.REFUNDED})

#: Statuses from which the customer may still cancel (nothing has shipped).
CANCELLABLE: frozenset[OrderStatus] = frozenset(
    {
        S.PENDING,
        S.RESERVED,
        S.REQUIRES_ACTION,
        S.PAYMENT_PENDING,
        S.AUTHORIZED,
        S.PAID,
        S.FULFILLING,
        S.ADDRESS_INVALID,
    }
)

#: Statuses in which some units may not have shipped yet: nothing has, or some packages
#: of several have left and others wait. Their unshipped lines may be cancelled and an
#: unshipped package moved to another location.
UNSHIPPED_LEFT: frozenset[OrderStatus] = CANCELLABLE | {S.PARTIALLY_SHIPPED}

#: Statuses an operator may hold an order in: the same, nothing has shipped.
HOLDABLE: frozenset[OrderStatus] = CANCELLABLE
#: Where a held order may go: back where it was held (a release), or cancelled (by the
#: customer or an operator) or refunded (a compensation already under way).
_FROM_HOLD: frozenset[OrderStatus] = HOLDABLE | {S.CANCELLED, S.REFUNDED}

_SIDE_EXITS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.REJECTED, S.CANCELLED}),
    S.RESERVED: frozenset({S.CANCELLED}),
    S.REQUIRES_ACTION: frozenset({S.CANCELLED}),
    S.PAYMENT_PENDING: frozenset({S.CANCELLED}),
    S.AUTHORIZED: frozenset({S.REFUNDED, S.CANCELLED}),
    S.PAID: frozenset({S.REFUNDED, S.CANCELLED}),
    S.FULFILLING: frozenset({S.REFUNDED, S.CANCELLED, S.ADDRESS_INVALID}),
    S.ADDRESS_INVALID: frozenset({S.FULFILLING, S.REFUNDED, S.CANCELLED}),
    S.PARTIALLY_SHIPPED: frozenset({S.REFUNDED}),
    S.SHIPPED: frozenset({S.REFUNDED}),
    S.IN_TRANSIT: frozenset({S.REFUNDED}),
    S.PARTIALLY_DELIVERED: frozenset({S.REFUNDED}),
}


class IllegalTransition(Exception):
    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"an order cannot move from {current} to {target}")
        self.current = current
        self.target = target


#: Finished orders that go back to an operator (``needs_attention``), only when a step
#: asks for it explicitly (``reopen=True``): the carrier rejected the void of a label
#: bought for goods that will never ship (``pipelines.shipping.labels``).
REOPENABLE: frozenset[OrderStatus] = frozenset({S.CANCELLED, S.REFUNDED})


def can_transition(current: OrderStatus, target: OrderStatus, *, reopen: bool = False) -> bool:
    """True when ``target`` may follow ``current``.

    Forward moves along the happy path may skip steps (a late ``delivered`` tracker
    event after ``shipped`` is fine); a move backwards, or out of a terminal state,
    never is. ``needs_attention`` can be entered from any live state and left for any
    live state, because a redrive resumes at the step that failed. ``on_hold`` is
    entered from any status before shipping and left only backwards, to the status it
    was held from (``orders.held_from`` says which), or for a cancel or a refund.
    """
    if reopen and current in REOPENABLE:
        return target == S.NEEDS_ATTENTION
    if current == target or current in TERMINAL:
        return False
    if current == S.ON_HOLD:
        return target in _FROM_HOLD
    if target == S.ON_HOLD:
        return current in HOLDABLE
    if target == S.NEEDS_ATTENTION or current == S.NEEDS_ATTENTION:
        return True
    if target in _SIDE_EXITS.get(current, frozenset()):
        return True
    if current in HAPPY_PATH and target in HAPPY_PATH:
        return HAPPY_PATH.index(target) > HAPPY_PATH.index(current)
    return False


def check_transition(current: OrderStatus, target: OrderStatus, *, reopen: bool = False) -> None:
    if not can_transition(current, target, reopen=reopen):
        raise IllegalTransition(current, target)


def is_terminal(status: OrderStatus) -> bool:
    return status in TERMINAL


class PaymentStatus(StrEnum):
    """Where an order's payment stands, as the order resource shows it."""

    #: The charge is on its way to Stripe (or Stripe is still processing it).
    PROCESSING = "processing"
    #: The card needs the customer (3-D Secure).
    REQUIRES_ACTION = "requires_action"
    #: The money is held on the card, waiting for its capture.
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    #: An authorization released without capture (a cancel before shipping).
    VOIDED = "voided"
    FAILED = "failed"
