"""Outbound webhooks to the merchant: which order milestones are events, how an event's
delivery is signed, and the database trigger that records them.

Orders change status in several places (the saga's steps, the API's placement and
cancel, the set-based statement that applies tracker webhooks), and every one of them
writes the change to the order's timeline (``order_events``). So milestones are captured
in one place: a trigger on the timeline. It is deferred to the commit, so an event
carries the order as that commit left it, and a step that passes several milestones in
one commit (paid, then packed) raises each of them, in timeline order. For each it
writes an event (``evt_…``, its type, the order's per-order sequence number and a copy
of the order row) and, per subscribed endpoint, a delivery due at once, all in the
transaction that moved the order; the scheduler's dispatch sends the due deliveries in
batches (``workers.webhook_dispatch``). When no enabled endpoint subscribes to
the type it writes nothing at all, so an order costs nothing extra without endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from fulfillment.messages import DELIVER_WEBHOOK


@dataclass(frozen=True)
class Milestone:
    """An event type and the timeline entry that raises it: the order's placement
    (``created``), a move to ``status``, or an entry written by ``step`` (with
    ``outcome``, when given): a milestone that is no status of its own, such as a
    refund that leaves the order where it is."""

    type: str
    status: str | None = None
    step: str | None = None
    outcome: str | None = None
    created: bool = False

    @property
    def condition(self) -> str:
        """When a new timeline row (``NEW``) raises it, in SQL."""
        if self.created:
            return "(NEW.from_status IS NULL AND NEW.to_status = 'pending')"
        if self.step is not None:
            outcome = f" AND NEW.outcome = '{self.outcome}'" if self.outcome else ""
            return f"(NEW.step = '{self.step}'{outcome})"
        return (
            f"(NEW.to_status = '{self.status}' AND NEW.from_status IS DISTINCT FROM NEW.to_status)"
        )


#: Every order milestone the merchant can subscribe to. The payments lane extends it
#: with ``Milestone("order.partially_refunded", step="refund", outcome="refunded")`` (the
#: timeline entry ``pipelines.payments.refunds`` writes for each refund Stripe accepted) and a
#: migration that runs ``trigger_sql`` with the new list.
MILESTONES: tuple[Milestone, ...] = (
    Milestone("order.created", created=True),
    Milestone("order.authorized", "authorized"),
    Milestone("order.paid", "paid"),
    Milestone("order.partially_shipped", "partially_shipped"),
    Milestone("order.shipped", "shipped"),
    Milestone("order.partially_delivered", "partially_delivered"),
    Milestone("order.delivered", "delivered"),
    Milestone("order.rejected", "rejected"),
    Milestone("order.cancelled", "cancelled"),
    Milestone("order.refunded", "refunded"),
    Milestone("order.needs_attention", "needs_attention"),
)
#: The event types, in the order above; ``*`` subscribes to all of them.
EVENT_TYPES: tuple[str, ...] = tuple(m.type for m in MILESTONES)
ALL_EVENTS = "*"

#: Columns of the order row an event's copy leaves out: the customer's 3-D Secure
#: client secret is for the customer's browser only.
PRIVATE_COLUMNS = ("payment_client_secret", "payment_next_action")

#: The signature header: ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (Stripe's
#: scheme); during a secret's rotation grace period one ``v1`` per secret.
SIGNATURE_HEADER = "Fulfillment-Signature"
EVENT_ID_HEADER = "Fulfillment-Event-Id"
DELIVERY_ID_HEADER = "Fulfillment-Delivery-Id"
ATTEMPT_HEADER = "Fulfillment-Attempt"
#: What a signing secret starts with (as Stripe's do).
SECRET_PREFIX = "whsec_"

#: How long a dispatched delivery may go unanswered before the scheduler sends it again
#: (its message was lost with Redis, or its worker died mid-call): at least once.
DISPATCH_LEASE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, shown to the admin once."""
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=…,v1=…[,v1=…]``: one signature per secret that still verifies."""
    parts = [f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets_)]
    return ",".join(parts)


# --- the trigger ------------------------------------------------------------------------

#: The outbox row of a delivery, as the relay reads it (``fulfillment.messages``).
_ACTOR, _QUEUE = DELIVER_WEBHOOK


def _subscribed(kind: str) -> str:
    return (
        f"NOT e.disabled AND ({kind} = ANY(e.event_types) OR '{ALL_EVENTS}' = ANY(e.event_types))"
    )


def trigger_sql(milestones: Sequence[Milestone], *, batched: bool = True) -> list[str]:
    """The statements that (re)define the milestone trigger for ``milestones``: the
    function, and the constraint trigger on the timeline, deferred to the commit. Its
    WHEN clause is evaluated at once, so entries that are no milestone cost nothing.

    ``batched`` (since migration 0023): each delivery is written due at once, and the
    scheduler's dispatch sends an endpoint's due deliveries in batches
    (``workers.webhook_dispatch``). Before it (migrations 0007 and 0019, frozen), each
    delivery was leased and its own outbox row written here: one message, one commit
    and one wake of every listener per event."""
    if batched:
        deliveries = f"""
                INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at)
                SELECT event, e.id, now() FROM webhook_endpoints e WHERE {_subscribed("kind")};"""
    else:
        deliveries = f"""
                WITH due AS (
                    INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at)
                    SELECT event, e.id, now() + interval '{DISPATCH_LEASE_SECONDS} seconds'
                    FROM webhook_endpoints e WHERE {_subscribed("kind")}
                    RETURNING id)
                INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
                SELECT '{_QUEUE}', '{_ACTOR}', jsonb_build_object('delivery_id', due.id::text),
                       o.request_id
                FROM due, orders o WHERE o.id = NEW.order_id;"""
    kinds = ",\n                ".join(f"CASE WHEN {m.condition} THEN '{m.type}' END"
                                        for m in milestones)  # fmt: skip
    when = " OR ".join(m.condition for m in milestones)
    stripped = "".join(f" - '{c}'" for c in PRIVATE_COLUMNS)
    function = f"""
        CREATE OR REPLACE FUNCTION merchant_order_events() RETURNS trigger AS $$
        DECLARE
            kind text;
            event text;
        BEGIN
            FOREACH kind IN ARRAY array_remove(ARRAY[
                {kinds}]::text[], NULL) LOOP
                CONTINUE WHEN NOT EXISTS (
                    SELECT 1 FROM webhook_endpoints e WHERE {_subscribed("kind")});
                event := 'evt_' || replace(gen_random_uuid()::text, '-', '');
                INSERT INTO merchant_events (id, order_id, type, sequence, snapshot, created_at)
                SELECT event, o.id, kind,
                       COALESCE((SELECT max(sequence) FROM merchant_events
                                 WHERE order_id = o.id), 0) + 1,
                       to_jsonb(o){stripped} || CASE WHEN NEW.details ? 'package'
                           THEN jsonb_build_object('event_package', NEW.details->'package')
                           ELSE '{{}}'::jsonb END, NEW.created_at
                FROM orders o WHERE o.id = NEW.order_id;{deliveries}
            END LOOP;
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
    """
    return [
        function,
        "DROP TRIGGER IF EXISTS order_events_merchant ON order_events",
        "CREATE CONSTRAINT TRIGGER order_events_merchant AFTER INSERT ON order_events "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({when}) "
        "EXECUTE FUNCTION merchant_order_events()",
    ]
