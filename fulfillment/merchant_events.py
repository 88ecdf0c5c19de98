"""Outbound webhooks to the merchant: which order milestones are events, how an event's
delivery is signed, and the database trigger that records them.

Orders change status in several places (the saga's steps, the API's placement and
cancel, the set-based statement that applies tracker webhooks), so milestones are
captured in one: a PostgreSQL trigger on the orders table. For each milestone it writes
an event (``evt_…``, its type, the order's per-order sequence number and a copy of the
order row) and, per subscribed endpoint, a delivery and the outbox row that sends it,
all in the transaction that moved the order. When no enabled endpoint subscribes to the
type it writes nothing at all, so an order costs nothing extra without endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fulfillment.messages import DELIVER_WEBHOOK


@dataclass(frozen=True)
class Milestone:
    """An event type and the change of an order row that raises it: ``column`` becoming
    ``value`` (for ``status`` and any other column), or the order's insertion."""

    type: str
    column: str = "status"
    value: str | None = None
    on_insert: bool = False


#: Every order milestone the merchant can subscribe to. Another lane extends it with a
#: milestone of its own (``Milestone("order.partially_refunded", "payment_status",
#: "partially_refunded")``) and a migration that runs ``trigger_sql`` with the new list.
MILESTONES: tuple[Milestone, ...] = (
    Milestone("order.created", on_insert=True),
    Milestone("order.authorized", value="authorized"),
    Milestone("order.paid", value="paid"),
    Milestone("order.shipped", value="shipped"),
    Milestone("order.delivered", value="delivered"),
    Milestone("order.rejected", value="rejected"),
    Milestone("order.cancelled", value="cancelled"),
    Milestone("order.refunded", value="refunded"),
    Milestone("order.needs_attention", value="needs_attention"),
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


def _kinds(milestones: Iterable[Milestone]) -> str:
    cases = []
    for m in milestones:
        if m.on_insert:
            cases.append(f"CASE WHEN TG_OP = 'INSERT' THEN '{m.type}' END")
        else:
            changed = f"(TG_OP = 'INSERT' OR OLD.{m.column} IS DISTINCT FROM NEW.{m.column})"
            cases.append(f"CASE WHEN NEW.{m.column} = '{m.value}' AND {changed} "
                         f"THEN '{m.type}' END")  # fmt: skip
    return "array_remove(ARRAY[" + ",\n            ".join(cases) + "]::text[], NULL)"


def trigger_sql(milestones: Sequence[Milestone]) -> list[str]:
    """The statements that (re)define the milestone trigger for ``milestones``: the
    function, and the two triggers (insertion; an update of a watched column)."""
    columns = sorted({m.column for m in milestones if not m.on_insert})
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
    stripped = "".join(f" - '{c}'" for c in PRIVATE_COLUMNS)
    function = f"""
        CREATE OR REPLACE FUNCTION merchant_order_events() RETURNS trigger AS $$
        DECLARE
            kind text;
            event text;
        BEGIN
            FOREACH kind IN ARRAY {_kinds(milestones)} LOOP
                CONTINUE WHEN NOT EXISTS (
                    SELECT 1 FROM webhook_endpoints e WHERE {_subscribed("kind")});
                event := 'evt_' || replace(gen_random_uuid()::text, '-', '');
                INSERT INTO merchant_events (id, order_id, type, sequence, snapshot)
                VALUES (event, NEW.id, kind,
                        COALESCE((SELECT max(sequence) FROM merchant_events
                                  WHERE order_id = NEW.id), 0) + 1,
                        to_jsonb(NEW){stripped});
                WITH due AS (
                    INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at)
                    SELECT event, e.id, now() + interval '{DISPATCH_LEASE_SECONDS} seconds'
                    FROM webhook_endpoints e WHERE {_subscribed("kind")}
                    RETURNING id)
                INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
                SELECT '{_QUEUE}', '{_ACTOR}', jsonb_build_object('delivery_id', due.id::text),
                       NEW.request_id
                FROM due;
            END LOOP;
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
    """
    return [
        function,
        "DROP TRIGGER IF EXISTS orders_merchant_created ON orders",
        "DROP TRIGGER IF EXISTS orders_merchant_milestone ON orders",
        "CREATE TRIGGER orders_merchant_created AFTER INSERT ON orders "
        "FOR EACH ROW EXECUTE FUNCTION merchant_order_events()",
        f"CREATE TRIGGER orders_merchant_milestone AFTER UPDATE OF {', '.join(columns)} "
        f"ON orders FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION merchant_order_events()",
    ]
