"""Provider webhooks: verify the signature with the SDK, store the event once per
(provider, event id), and apply what it means in the same statement, answering at once.

An event only costs a worker message when it needs one:

- a Stripe payment event for an order whose payment was already settled by the charge's
  own answer (the common case) is stored as processed and nothing more; one for an order
  whose charge is still in flight is kept for that charge's commit to pick up; one for
  an order that waits on it (``payment_pending``, or cancelled with money perhaps taken)
  is handed to ``process_webhook`` through the outbox; a refund event (a refund that
  settled, or failed, after its call answered) always is, for an order we know;
- a tracker event is applied in its statement: the shipment's tracker status and the
  order move forward only (``in_transit``, ``delivered`` with its e-mail queued); a
  parcel that will not arrive goes to ``process_webhook`` for the refund; one whose
  shipment is not stored yet (it overtook the label's commit) waits under its tracking
  code, and the commit that stores the shipment applies it. Both lock the tracking code
  first (``fulfillment.locks``), so exactly one of them sees the other's row; a return
  label's tracker moves its return to ``in_transit``.

A bad or stale signature is a 400 and stores nothing; a duplicate is a 200 with no
second effect. Late or repeated events never move an order back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import web
from psycopg import AsyncConnection
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from api.shared.context import SETTINGS, WEBHOOK_WRITER
from api.shared.errors import ApiError, ErrorCode
from api.shared.group_commit import GroupCommit, Waiting
from api.shared.jsonio import respond_data, too_deep, unstorable_in
from api.shared.rawdb import raw_connection
from fulfillment.locks import LOCK_TRACKING_CODES
from fulfillment.messages import PROCESS_WEBHOOK, SEND_NOTIFICATION
from fulfillment.notifications import dedup_key
from fulfillment.outbox import current_request_id
from fulfillment.states import OrderStatus as S
from fulfillment.states import can_transition
from fulfillment.transitions import MILESTONES
from integrations.errors import InvalidSignature
from integrations.ports import NotificationKind
from integrations.ports import TrackerStatus as T
from integrations.stripe_events import LAPSE_EVENTS, PAYMENT_EVENTS, REFUND_EVENTS
from integrations.webhooks import verify_easypost_webhook, verify_stripe_webhook
from monitoring import metrics
from pipelines.saga import (
    CARRIED,
    HOLDING_PAYMENT,
    PAID_STATES,
    TRACKER_ORDER,
    TRACKING_FAILURES,
    TRACKING_TARGETS,
)

log = logging.getLogger(__name__)

#: Order states whose payment is settled: a payment event changes nothing for them...
SETTLED = sorted(state.value for state in (*PAID_STATES, S.REFUNDED, S.REJECTED))
#: ...unless it says the authorization an order still holds has lapsed.
HOLDING = sorted(state.value for state in HOLDING_PAYMENT)

#: Store a Stripe event once, decide in the same statement what it needs, and queue
#: ``process_webhook`` only when an order waits on it.
STORE_STRIPE = """
    WITH o AS (
        SELECT status, refund_due OR refund_id IS NOT NULL AS refunding, request_id,
               capture_method = 'manual' AND amount_captured = 0 AS uncaptured
        FROM orders WHERE id = %(order_id)s
    ), held AS (
        -- an order whose charge is in flight is locked while its event is stored: the
        -- charge's commit, which picks such events up, then sees it; one that commits
        -- first (a few milliseconds) is waited for and its new status decides
        SELECT status, refund_due OR refund_id IS NOT NULL AS refunding
        FROM orders WHERE id = %(order_id)s AND (SELECT status FROM o) = 'reserved'
        FOR UPDATE
    ), decision AS (
        SELECT CASE
            -- a refund that changed after its call answered: its step reads it again
            WHEN %(refund_event)s AND o.status IS NOT NULL THEN 'queue'
            WHEN NOT %(payment_event)s OR o.status IS NULL THEN 'done'
            -- an authorization that lapsed matters to an order that went on holding it
            WHEN %(lapse_event)s AND o.uncaptured
                 AND coalesce(held.status, o.status) = ANY(%(holding)s) THEN 'queue'
            WHEN coalesce(held.status, o.status) = ANY(%(settled)s) THEN 'done'
            WHEN coalesce(held.status, o.status) = 'cancelled'
                 AND (coalesce(held.refunding, o.refunding)
                      OR %(event_type)s <> 'payment_intent.succeeded') THEN 'done'
            WHEN held.status = 'reserved' THEN 'wait'
            ELSE 'queue' END AS what, o.request_id
        FROM (SELECT 1) AS one LEFT JOIN o ON true LEFT JOIN held ON true
    ), stored AS (
        INSERT INTO webhook_events (provider, event_id, event_type, order_id, payload,
                                    processed_at)
        SELECT 'stripe', %(event_id)s, %(event_type)s, %(order_id)s, %(payload)s::jsonb,
               CASE WHEN decision.what = 'done' THEN now() END
        FROM decision
        ON CONFLICT ON CONSTRAINT uq_webhook_events_provider_event DO NOTHING
        RETURNING id
    ), message AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        SELECT %(queue)s, %(actor)s, jsonb_build_object('event_id', stored.id::text),
               coalesce(decision.request_id, %(request_id)s)
        FROM stored, decision WHERE decision.what = 'queue'
    )
    SELECT stored.id, decision.what FROM stored, decision
"""

#: Store a tracker event once and apply it in the same statement (see the module's
#: docstring); answers the stored id and the order's move, if any. The event applies to
#: one shipment: the one its tracker names, else the newest with its code (carriers
#: reuse codes). A return label's tracker moves its return (``label_created`` ->
#: ``in_transit``) and nothing else. An order in several packages (``split``) moves as
#: they all stand, so its events are stored unprocessed and queued for the worker
#: (``pipelines.shipping.tracking``), as failures are. The batch has locked the code first
#: (``_store``).
STORE_TRACKER = """
    WITH ship AS (
        SELECT s.order_id, s.shipment_id, s.tracker_status,
               (SELECT count(DISTINCT a->>'location_id') > 1
                FROM orders so, jsonb_array_elements(so.allocation) a
                WHERE so.id = s.order_id) AS split
        FROM shipments s WHERE s.tracking_code = %(code)s
        ORDER BY s.shipment_id = %(shipment)s IS TRUE DESC,
                 s.tracker_id = %(tracker)s IS TRUE DESC, s.created_at DESC
        LIMIT 1
    ), ret AS (
        SELECT id, order_id FROM returns
        WHERE tracking_code = %(code)s AND NOT EXISTS (SELECT 1 FROM ship)
        ORDER BY shipment_id = %(shipment)s IS TRUE DESC, created_at DESC
        LIMIT 1
    ), target AS (
        SELECT o.id, o.status AS from_status, o.request_id, o.customer_id, o.created_at,
               CASE WHEN o.status = ANY(%(from_states)s) AND NOT o.refund_due AND NOT ship.split
                    THEN %(to_status)s END AS to_status
        FROM orders o JOIN ship ON o.id = ship.order_id
        FOR UPDATE OF o
    ), stored AS (
        INSERT INTO webhook_events (provider, event_id, event_type, order_id, tracking_code,
                                    payload, processed_at)
        SELECT 'easypost', %(event_id)s, %(event_type)s,
               coalesce((SELECT id FROM target), (SELECT order_id FROM ret)), %(code)s,
               %(payload)s::jsonb,
               CASE WHEN NOT %(tracker_event)s OR EXISTS (SELECT 1 FROM ret)
                         OR (EXISTS (SELECT 1 FROM ship WHERE NOT split) AND NOT %(failure)s)
                    THEN now() END
        ON CONFLICT ON CONSTRAINT uq_webhook_events_provider_event DO NOTHING
        RETURNING id, processed_at
    ), shipment AS (
        UPDATE shipments SET tracker_status = %(status)s, updated_at = now()
        FROM stored
        WHERE shipment_id = (SELECT shipment_id FROM ship WHERE NOT split)
          AND coalesce(array_position(%(ranks)s::text[], %(status)s), 0)
              > coalesce(array_position(%(ranks)s::text[], tracker_status), 0)
    ), returned AS (
        UPDATE returns SET status = 'in_transit', updated_at = now()
        FROM stored
        WHERE returns.id = (SELECT id FROM ret) AND returns.status = 'label_created'
          AND %(carried)s
    ), moved AS (
        UPDATE orders o
        SET status = t.to_status, status_changed_at = now(), updated_at = now(),
            version = o.version + 1, swept_at = NULL,
            delivered_at = CASE WHEN t.to_status = 'delivered' THEN now() ELSE o.delivered_at END
        FROM target t, stored
        WHERE o.id = t.id AND t.to_status IS NOT NULL
        RETURNING o.id, t.from_status, t.to_status, t.customer_id, t.created_at, t.request_id
    ), timeline AS (
        INSERT INTO order_events (order_id, step, from_status, to_status, details, created_at)
        SELECT id, 'apply_tracking', from_status, to_status,
               jsonb_build_object('tracker_status', %(status)s::text), now()
        FROM moved
    ), mail AS (
        INSERT INTO notifications (dedup_key, kind, order_id, user_id, data)
        SELECT replace(%(delivered_key)s, '{order_id}', id::text), %(delivered)s, id,
               customer_id, '{}'::jsonb
        FROM moved WHERE to_status = 'delivered'
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING id
    ), mail_message AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        SELECT %(mail_queue)s, %(mail_actor)s, jsonb_build_object('notification_id', mail.id::text),
               moved.request_id
        FROM mail, moved
    ), message AS (
        INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
        SELECT %(queue)s, %(actor)s, jsonb_build_object('event_id', stored.id::text),
               coalesce((SELECT request_id FROM target), %(request_id)s)
        FROM stored WHERE stored.processed_at IS NULL AND EXISTS (SELECT 1 FROM ship)
    )
    SELECT stored.id, moved.from_status, moved.to_status,
           extract(epoch FROM now() - moved.created_at) AS age
    FROM stored LEFT JOIN moved ON true
"""
#: The batch's tracking codes, locked before any of its events reads (``fulfillment.locks``).
LOCK_CODES = LOCK_TRACKING_CODES.compile(dialect=psycopg_dialect()).string


def stripe_params(event_id: str, event_type: str, payload: str,
                  order_id: uuid.UUID | None) -> dict[str, Any]:  # fmt: skip
    """The parameters of ``STORE_STRIPE`` for one verified event."""
    return {
        "event_id": event_id, "event_type": event_type, "payload": payload, "order_id": order_id,
        "payment_event": event_type in PAYMENT_EVENTS, "refund_event": event_type in REFUND_EVENTS,
        "settled": SETTLED,
        "lapse_event": event_type in LAPSE_EVENTS, "holding": HOLDING,
        **_message(PROCESS_WEBHOOK),
    }  # fmt: skip


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def stripe_webhook(request: web.Request) -> web.Response:
    payload = _shallow("stripe", await request.read())
    secret = request.app[SETTINGS].stripe_webhook_secret.get_secret_value()
    try:
        event = verify_stripe_webhook(payload, request.headers.get("Stripe-Signature"), secret)
    except InvalidSignature as exc:
        metrics.webhooks_total.labels("stripe", "invalid_signature").inc()
        raise ApiError(400, ErrorCode.INVALID_SIGNATURE, str(exc)) from None
    text = _checked("stripe", event, payload)
    order_id = _uuid_or_none((event.data.get("metadata") or {}).get("order_id"))
    params = stripe_params(event.id, event.type, text, order_id)
    row = await _execute(request, "stripe", STORE_STRIPE, params)
    return _answer("stripe", row)


async def easypost_webhook(request: web.Request) -> web.Response:
    payload = _shallow("easypost", await request.read())
    secret = request.app[SETTINGS].easypost_webhook_secret.get_secret_value()
    try:
        event = verify_easypost_webhook(payload, request.headers, secret)
    except InvalidSignature as exc:
        metrics.webhooks_total.labels("easypost", "invalid_signature").inc()
        raise ApiError(400, ErrorCode.INVALID_SIGNATURE, str(exc)) from None
    text = _checked("easypost", event, payload)
    result = event.data if isinstance(event.data, dict) else {}
    code = result.get("tracking_code")
    code = code if isinstance(code, str) and 0 < len(code) <= 255 else None
    tracker = event.type == "tracker.updated" and code is not None
    status = _tracker_status(result.get("status"))
    target = TRACKING_TARGETS.get(status)
    params = {
        "event_id": event.id, "event_type": event.type, "payload": text, "code": code,
        "tracker_event": tracker, "shipment": _text(result.get("shipment_id")),
        "tracker": _text(result.get("id")),
        "status": status.value, "failure": status in TRACKING_FAILURES,
        "to_status": target.value if target else None, "carried": target is not None,
        "from_states": [s.value for s in CARRIED if target and can_transition(s, target)],
        "ranks": [s.value for s in TRACKER_ORDER],
        "delivered": NotificationKind.DELIVERED.value,
        "delivered_key": dedup_key(NotificationKind.DELIVERED.value, order_id="{order_id}", user_id=""), **_message(PROCESS_WEBHOOK),
        "mail_queue": SEND_NOTIFICATION[1], "mail_actor": SEND_NOTIFICATION[0],
    }  # fmt: skip
    row = await _execute(request, "easypost", STORE_TRACKER, params, code=code if tracker else None)
    if row is not None and row[2] is not None:
        metrics.order_transitions_total.labels(row[1], row[2]).inc()
        milestone = MILESTONES.get(S(row[2]))
        if milestone is not None:
            metrics.order_lead_time_seconds.labels(milestone).observe(float(row[3]))
    return _answer("easypost", row)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 255 else None


def _tracker_status(value: Any) -> T:
    try:
        return T(str(value))
    except ValueError:
        return T.UNKNOWN


def _shallow(provider: str, payload: bytes) -> bytes:
    """The body, unless it nests too deep for any provider's event: refused before the
    signature check, whose SDKs parse it with Python's recursion limit as the bound."""
    if too_deep(payload):
        raise _invalid_event(provider, "the event nests too deep to be one")
    return payload


def _checked(provider: str, event, payload: bytes) -> str:
    """The event's body as text, or a 400 for an event the database cannot hold."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        text = None
    if not event.id or not event.type or len(event.id) > 255 or len(event.type) > 64 or not text:
        raise _invalid_event(provider, "the event has no id or type, or is not UTF-8 JSON")
    if unstorable_in(payload):
        raise _invalid_event(provider, "the event holds text PostgreSQL cannot store (NUL)")
    return text


def _invalid_event(provider: str, message: str) -> ApiError:
    metrics.webhooks_total.labels(provider, "rejected").inc()
    return ApiError(400, ErrorCode.INVALID_EVENT, message)


def _message(message: tuple[str, str]) -> dict[str, Any]:
    return {"actor": message[0], "queue": message[1], "request_id": current_request_id()}


async def _execute(request: web.Request, provider: str, statement: str, params: dict[str, Any],
                   *, code: str | None = None):  # fmt: skip
    intake = Intake(statement=statement, params=params, tracking_code=code)
    try:
        return await request.app[WEBHOOK_WRITER].submit(intake)
    except psycopg.DataError as exc:  # a value jsonb cannot hold (a number past its range)
        raise _invalid_event(provider, f"the event cannot be stored: {exc}") from None


@dataclass(slots=True, eq=False)
class Intake(Waiting):
    """One verified event waiting to be stored; answered with its statement's row."""

    statement: str
    params: dict[str, Any]
    #: The tracking code a tracker event is stored under, locked before its statement.
    tracking_code: str | None = None


class WebhookWriter(GroupCommit[Intake]):
    """Group commit for webhook intake (``api.shared.group_commit``): the events that arrive
    while a batch is in the database are stored together, each by its own statement, in
    one transaction. If the batch fails (a deadlock between two batches, say), its events
    are stored one by one."""

    def __init__(self, engine: AsyncEngine, *, writers: int = 2, max_batch: int = 64,
                 gather: float = 0.0) -> None:  # fmt: skip
        self._engine = engine
        super().__init__(writers=writers, max_batch=max_batch, gather=gather)

    async def write(self, batch: list[Intake]) -> None:
        async with raw_connection(self._engine) as conn:
            try:
                rows = await _store(conn, batch)
            except Exception:
                if len(batch) == 1:
                    raise
                log.warning("webhook batch failed; storing its events one by one", exc_info=True)
                await conn.rollback()
                for intake in batch:
                    try:
                        (row,) = await _store(conn, [intake])
                    except Exception as exc:
                        await conn.rollback()
                        intake.settle(exc)
                    else:
                        intake.settle(row)
                return
        for intake, row in zip(batch, rows, strict=True):
            intake.settle(row)


async def _store(conn: AsyncConnection, batch: list[Intake]) -> list[Any]:
    """Every statement of the batch and the commit, in one round trip; the batch's
    tracking codes are locked first, in a statement of their own, so that each event
    sees a shipment whose commit it waited for (and ``ship_order`` its event)."""
    codes = sorted({i.tracking_code for i in batch if i.tracking_code is not None})
    async with conn.pipeline():
        if codes:
            await conn.execute(LOCK_CODES, {"codes": codes}, prepare=True)
        cursors = [await conn.execute(i.statement, i.params, prepare=True) for i in batch]
        await conn.commit()
    return [await cursor.fetchone() for cursor in cursors]


def _answer(provider: str, row) -> web.Response:
    outcome = "accepted" if row is not None else "duplicate"
    metrics.webhooks_total.labels(provider, outcome).inc()
    return respond_data({"received": True, "duplicate": row is None})
