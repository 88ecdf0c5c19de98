"""The order saga in one map: for each live order state, the step that moves it on, what
that step runs in the same message, what follows it, what undoes it, and how long the
order may sit there before the sweeper re-drives it.

Read it top to bottom and you have the whole life of an order:

======================  =====================================================================
state                   what happens
======================  =====================================================================
pending                 ``reserve_inventory`` reserves every line or none (out of stock:
                        ``rejected``, e-mail); the same message goes on to charge
reserved                ``request_payment`` charges the card (Stripe, key
                        ``order_<id>_payment``; ``PAYMENT_CAPTURE=shipment`` only
                        authorizes). Authorized: ``authorized`` (captured: ``paid``) and
                        packed (``fulfilling``) in one commit, confirmation e-mail sent at
                        once, and the same message goes on to buy the label. Processing:
                        ``payment_pending``. The card needs its owner (3-D Secure):
                        ``requires_action``. Declined: compensation ``release_and_cancel``
requires_action         waits for the customer to authenticate with Stripe.js, then for
                        Stripe's webhook (``settle_payment``); past its reservation
                        deadline, ``expire_reservation`` cancels it, stock back, e-mail
payment_pending         waits for Stripe's webhook (``settle_payment``, then the label);
                        past its reservation deadline, ``expire_reservation`` cancels it
authorized, paid        packed by ``fulfil_order`` (only after a redrive), then the label
fulfilling              ``ship_order`` buys the label (EasyPost) under the order's purchase
                        lock, not its row lock (a cancel or hold meanwhile is answered at
                        once; the purchase's end re-checks and voids a label not shipped):
                        ``shipped``, stock consumed, e-mail sent at once, capture due;
                        ``capture_payment`` captures the authorization once (key
                        ``order_<id>_capture``). Refused address: ``address_invalid``; the
                        service the customer paid for no longer offered:
                        ``needs_attention`` (nothing bought or refunded); any other
                        refusal: compensation ``refund`` (an authorization is voided, a
                        capture refunded)
address_invalid         waits for the customer's fix (``PATCH …/shipping_address``) or an
                        operator's override, which send it back to ``fulfilling`` with
                        ``ship_order``; the sweeper's ``recheck_address`` asks the carrier
                        again, rarely (30 stall periods)
shipped, in_transit     the carrier's tracker webhooks move it on in the statement that
                        stores them (``api.intake.providers``); ``delivered`` sends the last
                        e-mail; ``refresh_tracking`` polls when they stay away; a parcel
                        that will not arrive: compensation ``refund``
needs_attention         an operator's dead-letter replay resumes it where it stopped; an
                        authorization about to lapse on an order not shipped, or one
                        Stripe let lapse, sends the order here (``pipelines.payments.capture``)
on_hold                 an operator's hold: no step moves it, the sweeper leaves it; the
                        release puts it back where it was held and sends that stage's message
======================  =====================================================================

Messages carry an order id; the step reads where the order stands and does nothing if
it has moved on, so the same message may come from a step, a retry, the sweeper or a
replay. This module holds names only (no step code, no provider SDK), so the sweeper,
the API and the command line can read it cheaply; ``pipelines.actors`` binds each name
to its function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fulfillment import messages as m
from fulfillment.states import OrderStatus as S
from integrations.ports import TrackerStatus as T


class Compensation(StrEnum):
    """What undoes an order's progress, by the plan in ``pipelines.compensation``."""

    #: Nothing was charged that must come back: give the stock back, cancel, tell.
    RELEASE_AND_CANCEL = "release_and_cancel"
    #: Money may have been taken: give the stock back, refund, tell.
    REFUND = "refund"


class Entry(StrEnum):
    """What happens as an order enters a state."""

    #: Its stage's message is queued in the transaction that moves the order there.
    QUEUE = "queue"
    #: The message that moved it there runs its stage's step next (see ``steps``).
    INLINE = "inline"
    #: An outside event moves it on (a provider's webhook); the sweeper asks after the
    #: deadline.
    WAIT = "wait"


@dataclass(frozen=True)
class Stage:
    state: S
    #: The message (actor, queue) that moves an order on from ``state``.
    message: tuple[str, str]
    #: What that message's actor runs, in order, in one message: each step does nothing
    #: for an order that is not (or no longer) in the state it expects, so a retry of
    #: the message resumes at the step that failed.
    steps: tuple[str, ...]
    #: What undoes the order's progress if the step fails for good.
    compensation: Compensation | None
    #: What happens as an order enters ``state``.
    entry: Entry
    #: How many stall periods (``STALL_AFTER_SECONDS``) the order may sit here before
    #: the sweeper sends ``message`` again.
    deadline: int = 1


RESERVE, PAY, SHIP = m.RESERVE_INVENTORY[0], m.REQUEST_PAYMENT[0], m.SHIP_ORDER[0]
CAPTURE = m.CAPTURE_PAYMENT[0]

#: The map. The order of the entries is the order of the happy path.
SAGA: tuple[Stage, ...] = (
    # the API writes the order and its first message (outbox) in one commit; that one
    # message reserves, charges, packs, ships and captures when nothing has to wait
    Stage(S.PENDING, m.RESERVE_INVENTORY, (RESERVE, PAY, SHIP, CAPTURE),
          Compensation.RELEASE_AND_CANCEL, Entry.QUEUE),
    Stage(S.RESERVED, m.REQUEST_PAYMENT, (PAY, SHIP, CAPTURE), Compensation.RELEASE_AND_CANCEL,
          Entry.INLINE),
    # the customer authenticates (3-D Secure), then Stripe's webhook settles it
    Stage(S.REQUIRES_ACTION, m.SETTLE_PAYMENT, ("settle_payment", SHIP, CAPTURE),
          Compensation.RELEASE_AND_CANCEL, Entry.WAIT),
    # a payment still processing: Stripe's webhook (or the sweeper) settles it
    Stage(S.PAYMENT_PENDING, m.SETTLE_PAYMENT, ("settle_payment", SHIP, CAPTURE),
          Compensation.RELEASE_AND_CANCEL, Entry.WAIT),
    # authorized (or paid) and packed in the same commit; it waits only after a redrive
    Stage(S.AUTHORIZED, m.FULFIL_ORDER, ("fulfil_order", SHIP, CAPTURE), Compensation.REFUND,
          Entry.INLINE),
    Stage(S.PAID, m.FULFIL_ORDER, ("fulfil_order", SHIP, CAPTURE), Compensation.REFUND,
          Entry.INLINE),
    Stage(S.FULFILLING, m.SHIP_ORDER, (SHIP, CAPTURE), Compensation.REFUND, Entry.INLINE),
    # an order split across locations: a label per package, each in a commit of its own,
    # the same message buying the next (fulfillment.packages)
    Stage(S.PARTIALLY_SHIPPED, m.SHIP_ORDER, (SHIP, CAPTURE), Compensation.REFUND,
          Entry.INLINE),
    # the carrier refused the address: the customer's fix or an operator's override sends
    # it back to fulfilling; the sweeper asks the carrier again, rarely
    Stage(S.ADDRESS_INVALID, m.RECHECK_ADDRESS, ("recheck_address", SHIP, CAPTURE),
          Compensation.REFUND, Entry.WAIT, deadline=30),
    # the carrier's tracker webhooks move it on where they are stored (api.intake.providers)
    # (a capture still due on a shipped order is re-sent by the sweeper on its own:
    # workers.sweeper.redrive_captures)
    Stage(S.SHIPPED, m.REFRESH_TRACKING, ("refresh_tracking",), Compensation.REFUND, Entry.WAIT,
          deadline=5),
    Stage(S.IN_TRANSIT, m.REFRESH_TRACKING, ("refresh_tracking",), Compensation.REFUND,
          Entry.WAIT, deadline=5),
    Stage(S.PARTIALLY_DELIVERED, m.REFRESH_TRACKING, ("refresh_tracking",),
          Compensation.REFUND, Entry.WAIT, deadline=5),
)  # fmt: skip

#: Messages outside the map whose step may settle a payment: the label follows at once.
CHAINS: dict[tuple[str, str], tuple[str, ...]] = {
    m.EXPIRE_RESERVATION: (m.EXPIRE_RESERVATION[0], SHIP, CAPTURE),
}

#: The stage of each live state.
BY_STATE: dict[S, Stage] = {stage.state: stage for stage in SAGA}

#: The message an order in ``payment_pending`` gets once its reservation has expired.
EXPIRY = m.EXPIRE_RESERVATION

#: Order states waiting for their money.
AWAITING_PAYMENT: frozenset[S] = frozenset({S.RESERVED, S.REQUIRES_ACTION, S.PAYMENT_PENDING})
#: Order states that hold a payment Stripe took or holds (until a refund or a void gives
#: it back).
PAID_STATES: frozenset[S] = frozenset({S.AUTHORIZED, S.PAID, S.FULFILLING, S.PARTIALLY_SHIPPED,
                                       S.SHIPPED, S.IN_TRANSIT, S.PARTIALLY_DELIVERED,
                                       S.DELIVERED})  # fmt: skip
#: Live order states that may go on with an authorization not yet captured: Stripe
#: letting it lapse sends them to ``needs_attention``.
HOLDING_PAYMENT: frozenset[S] = frozenset({S.AUTHORIZED, S.FULFILLING, S.PARTIALLY_SHIPPED,
                                           S.SHIPPED, S.IN_TRANSIT, S.PARTIALLY_DELIVERED,
                                           S.NEEDS_ATTENTION})  # fmt: skip
#: Order states that must not keep any money.
UNPAID_STATES: frozenset[S] = frozenset({S.CANCELLED, S.REFUNDED, S.REJECTED})
#: Order states whose goods may yet fail to reach the customer (a refused address, a
#: parcel that will not arrive): compensation ``refund``, and while an operator looks.
REFUNDABLE: frozenset[S] = frozenset(
    {stage.state for stage in SAGA if stage.compensation is Compensation.REFUND}
    | {S.NEEDS_ATTENTION}
)
#: Order states a parcel is on its way in: tracker events apply to them.
CARRIED: frozenset[S] = frozenset(
    {S.PARTIALLY_SHIPPED, S.SHIPPED, S.IN_TRANSIT, S.PARTIALLY_DELIVERED}
)


def steps_of(message: tuple[str, str]) -> tuple[str, ...]:
    """The steps an actor runs for ``message``, in order: a saga stage's chain, one of
    ``CHAINS``, or the one step of the same name (refunds, e-mails). Each step after
    the first runs unless the one before it failed (a declined card, a refused
    address); a step whose order is not where it expects does nothing."""
    for stage in SAGA:
        if stage.message == message:
            return stage.steps
    return CHAINS.get(message, (message[0],))


#: What each tracker status means for the order.
TRACKING_TARGETS: dict[T, S] = {
    T.IN_TRANSIT: S.IN_TRANSIT,
    T.OUT_FOR_DELIVERY: S.IN_TRANSIT,
    T.DELIVERED: S.DELIVERED,
    T.AVAILABLE_FOR_PICKUP: S.DELIVERED,
}
#: Tracker statuses after which the parcel will not arrive: compensation ``refund``.
TRACKING_FAILURES: frozenset[T] = frozenset({T.FAILURE, T.RETURN_TO_SENDER})
#: How far along each tracker status is; the shipment record never moves back.
TRACKER_ORDER: tuple[T, ...] = (T.PRE_TRANSIT, T.IN_TRANSIT, T.OUT_FOR_DELIVERY,
                                T.AVAILABLE_FOR_PICKUP, T.DELIVERED)  # fmt: skip
TRACKER_RANK: dict[str, int] = {status.value: rank for rank, status in enumerate(TRACKER_ORDER, 1)}
