"""The Stripe event types this service listens for: what a Stripe webhook endpoint for it
subscribes to (``enabled_events``, in the dashboard or through the API), and what the
sandbox's own endpoint subscribes to. Stripe sends an endpoint nothing else."""

from __future__ import annotations

#: The Stripe event types the order saga acts on: a payment taken, authorized, declined,
#: waiting for its owner (3-D Secure) or cancelled, and an authorization that lapsed.
PAYMENT_EVENTS: tuple[str, ...] = (
    "payment_intent.succeeded",
    "payment_intent.amount_capturable_updated",
    "payment_intent.requires_action",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.expired",
)
#: A refund that changed after the refund call answered: a pending one settled, or one
#: that failed, even after it had succeeded (a closed card). The saga learns a refund's
#: first outcome from the call itself, so no ``charge.refunded`` or ``refund.created``.
REFUND_EVENTS: tuple[str, ...] = ("refund.updated", "refund.failed")
SUBSCRIBED_EVENTS: tuple[str, ...] = PAYMENT_EVENTS + REFUND_EVENTS
#: Events that say an authorization is gone: they matter even for an order that went
#: on without its payment settled as captured.
LAPSE_EVENTS: tuple[str, ...] = ("payment_intent.canceled", "charge.expired")
