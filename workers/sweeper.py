"""Periodic re-drives: whatever a crash, a lost message or a Redis restart dropped is
found in the database (the source of truth) and sent again through the outbox.

- live orders untouched past their deadline get their current step again;
- orders in payment_pending past their reservation deadline get expired;
- refunds due, refunds accepted but not yet made, captures due, e-mails not yet sent and
  webhooks not yet processed are sent again;
- orders holding an authorization about to lapse, not shipped, go to needs_attention.
- label voids the carrier has not settled yet, and refunds Stripe has not, are asked
  about again.
Every sweep claims its rows with SKIP LOCKED, so several schedulers can run.

What it finds dropped (an order its own message should have moved on, an event never
applied, a capture, refund or e-mail never made) is counted as a rescue
(``fulfillment_sweeper_rescues_total``): a defect signal for on-call. Polls of what
waits on someone else (a customer's 3-D Secure, a carrier's tracker, a void's
settlement) and expiries are routine and not counted.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from fulfillment import messages as m
from fulfillment.models import (
    IDEMPOTENCY_KEY_TTL,
    IdempotencyKey,
    LabelVoid,
    Notification,
    Order,
    OrderEvent,
    OutboxMessage,
    Refund,
    WebhookEvent,
)
from fulfillment.outbox import outbox_insert
from fulfillment.states import OrderStatus as S
from monitoring import metrics
from pipelines.saga import EXPIRY, HOLDING_PAYMENT, SAGA, Entry

#: Rows one sweep handles at most.
LIMIT = 500
#: How long delivered outbox rows are kept for inspection.
OUTBOX_RETENTION = timedelta(days=1)


def redrive_stalled_orders(engine: Engine, *, stall: timedelta) -> int:
    """Each live order untouched past its stage's deadline gets its stage's message
    again (the saga map says which, and after how many stall periods)."""
    total = rescued = 0
    with Session(engine) as session, session.begin():
        for stage in SAGA:
            cutoff = func.now() - stall * stage.deadline
            orders = session.scalars(
                select(Order).where(
                    Order.status == stage.state.value, Order.status_changed_at < cutoff,
                    (Order.swept_at.is_(None)) | (Order.swept_at < cutoff),
                ).order_by(Order.status_changed_at).limit(LIMIT).with_for_update(skip_locked=True)
            ).all()  # fmt: skip
            for order in orders:
                order.swept_at = func.now()
                session.add(OrderEvent(order_id=order.id, step="sweeper", from_status=order.status,
                                       to_status=order.status, outcome="redriven",
                                       details={"message": stage.message[0]}))  # fmt: skip
                session.execute(outbox_insert(stage.message, order_id=str(order.id),
                                              request_id=order.request_id))  # fmt: skip
            total += len(orders)
            rescued += len(orders) if stage.entry is not Entry.WAIT else 0
    _rescued("order", rescued)
    return total


def expire_reservations(engine: Engine, *, stall: timedelta) -> int:
    with Session(engine) as session, session.begin():
        orders = session.scalars(
            select(Order).where(
                Order.status.in_([S.PAYMENT_PENDING.value, S.REQUIRES_ACTION.value]),
                Order.reserved_until < func.now(),
                (Order.swept_at.is_(None)) | (Order.swept_at < func.now() - stall),
            ).limit(LIMIT).with_for_update(skip_locked=True)
        ).all()  # fmt: skip
        for order in orders:
            order.swept_at = func.now()
            session.execute(outbox_insert(EXPIRY, order_id=str(order.id),
                                          request_id=order.request_id))  # fmt: skip
        return len(orders)


def redrive_refunds(engine: Engine, *, stall: timedelta) -> int:
    """Refunds due whose message was lost; not for an order waiting for an operator (a
    refund Stripe refused): their resume sends it again."""
    due = (Order.refund_due & (Order.status != S.NEEDS_ATTENTION.value)
           & ~_SETTLING_AT_STRIPE.where(Refund.order_id == Order.id).exists())  # fmt: skip
    return _rescued("refund", _resend(
        engine, Order, due, stall=stall, message=m.REFUND_PAYMENT, key="order_id"
    ))  # fmt: skip


def redrive_captures(engine: Engine, *, stall: timedelta) -> int:
    """Orders shipped with their capture still due: its message was lost, or it failed."""
    return _rescued("capture", _resend(
        engine, Order, Order.capture_due, stall=stall, message=m.CAPTURE_PAYMENT, key="order_id"
    ))  # fmt: skip


def redrive_refund_rows(engine: Engine, *, stall: timedelta) -> int:
    """Refunds accepted but not yet made at Stripe."""
    never_made = (Refund.status == "pending") & Refund.provider_refund_id.is_(None)
    return _rescued("refund_row", _resend(engine, Refund, never_made, stall=stall,
                    message=m.PROCESS_REFUND, key="refund_id", age=Refund.created_at))  # fmt: skip


#: Refunds Stripe took and settles later (``pending`` there): an order waiting on one is
#: not stalled, and the refund is asked about again, routinely, every stall period.
_SETTLING_AT_STRIPE = select(Refund.id).where(Refund.status == "pending",
                                              Refund.provider_refund_id.is_not(None))  # fmt: skip


def poll_refunds_at_stripe(engine: Engine, *, stall: timedelta) -> int:
    """Refunds pending at Stripe, in case their event is late or lost: a poll of what
    waits on someone else, not a rescue."""
    settling = (Refund.status == "pending") & Refund.provider_refund_id.is_not(None)
    return _resend(engine, Refund, settling, stall=stall, message=m.PROCESS_REFUND,
                   key="refund_id")  # fmt: skip


#: Orders not shipped whose card authorization lapses within the margin: to
#: needs_attention, in one statement, with the deadline in the reason and the timeline.
FLAG_EXPIRING = text("""
    WITH due AS (
        SELECT id, status, capture_before FROM orders
        WHERE capture_method = 'manual' AND amount_captured = 0 AND capture_before IS NOT NULL
          AND capture_before < now() + make_interval(secs => :margin)
          AND status = ANY(:states) AND NOT capture_due AND NOT refund_due
        ORDER BY capture_before LIMIT 500 FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE orders o SET status = 'needs_attention', attention_from = due.status,
               last_error = 'the card authorization lapses at ' || due.capture_before
                            || ' and the order has not shipped: ship it (the capture follows) '
                            || 'or cancel it before then',
               status_changed_at = now(), updated_at = now(), version = o.version + 1,
               swept_at = NULL
        FROM due WHERE o.id = due.id
        RETURNING o.id, due.status AS from_status, o.last_error, due.capture_before
    )
    INSERT INTO order_events (order_id, step, from_status, to_status, outcome, error, details,
                              created_at)
    SELECT id, 'authorization_expiry', from_status, 'needs_attention', 'failed', last_error,
           jsonb_build_object('capture_before', capture_before), now()
    FROM moved RETURNING order_id
""")
#: The states an order can be flagged from (it has not shipped).
NOT_SHIPPED = sorted(s.value for s in HOLDING_PAYMENT if s in (S.AUTHORIZED, S.FULFILLING))


def flag_expiring_authorizations(engine: Engine, *, margin: timedelta) -> int:
    with engine.begin() as conn:
        rows = conn.execute(FLAG_EXPIRING, {"margin": margin.total_seconds(),
                                            "states": NOT_SHIPPED}).all()  # fmt: skip
    return len(rows)


def redrive_notifications(engine: Engine, *, stall: timedelta) -> int:
    """E-mails whose intent is still pending: their message was lost."""
    return _rescued("notification", _resend(
        engine, Notification, Notification.status == "pending", stall=stall,
        message=m.SEND_NOTIFICATION, key="notification_id", age=Notification.created_at,
    ))  # fmt: skip


def redrive_webhooks(engine: Engine, *, stall: timedelta) -> int:
    """Stored provider events never applied: the step that should have was lost, or the
    event waited for a commit that did not pick it up."""
    return _rescued("webhook_event", _resend(
        engine, WebhookEvent, WebhookEvent.processed_at.is_(None), stall=stall,
        message=m.PROCESS_WEBHOOK, key="event_id", age=WebhookEvent.received_at,
    ))  # fmt: skip


def _rescued(kind: str, count: int) -> int:
    """Count ``count`` rescues of ``kind`` (after their commit) and answer ``count``."""
    if count:
        metrics.sweeper_rescues_total.labels(kind).inc(count)
    return count


def _resend(
    engine: Engine, model, condition, *, stall: timedelta, message, key: str, age=None
) -> int:
    """Claim up to LIMIT rows matching ``condition`` that are older than ``stall`` and
    were not swept within it, mark them swept and queue ``message`` for each."""
    cutoff = func.now() - stall
    age = age if age is not None else model.updated_at
    # the request that placed the row's order travels with the message (rule: every
    # message about an order carries its request id, whichever road it takes)
    # (an order row carries its own: a subquery on orders would not correlate with it)
    request_id = (
        Order.request_id
        if model is Order
        else select(Order.request_id).where(Order.id == model.order_id).scalar_subquery()
    )
    with Session(engine) as session, session.begin():
        rows = session.execute(
            select(model.id, request_id).where(condition, age < cutoff,
                                               (model.swept_at.is_(None)) | (model.swept_at < cutoff))
            .limit(LIMIT).with_for_update(of=model, skip_locked=True)
        ).all()  # fmt: skip
        if rows:
            ids = [row[0] for row in rows]
            session.execute(update(model).where(model.id.in_(ids)).values(swept_at=func.now()))
            for row_id, request in rows:
                session.execute(outbox_insert(message, request_id=request, **{key: str(row_id)}))
        return len(rows)


def clean_up(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            delete(OutboxMessage).where(OutboxMessage.delivered_at < func.now() - OUTBOX_RETENTION)
        )
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.created_at < func.now() - IDEMPOTENCY_KEY_TTL
            )
        )


def redrive_label_voids(engine: Engine, *, stall: timedelta) -> int:
    """Label voids the carrier has not settled yet: asked about again every stall
    period (``pipelines.shipping.labels.settle_label_void``)."""
    cutoff = func.now() - stall
    with Session(engine) as session, session.begin():
        rows = session.execute(
            select(LabelVoid.shipment_id, Order.request_id)
            .join(Order, Order.id == LabelVoid.order_id)
            .where(LabelVoid.status == "submitted", LabelVoid.requested_at < cutoff,
                   (LabelVoid.swept_at.is_(None)) | (LabelVoid.swept_at < cutoff))
            .limit(LIMIT).with_for_update(of=LabelVoid, skip_locked=True)
        ).all()  # fmt: skip
        if rows:
            ids = [row.shipment_id for row in rows]
            session.execute(update(LabelVoid).where(LabelVoid.shipment_id.in_(ids))
                            .values(swept_at=func.now()))  # fmt: skip
            for shipment_id, request_id in rows:
                session.execute(outbox_insert(m.SETTLE_LABEL_VOID, request_id=request_id,
                                              shipment_id=shipment_id))  # fmt: skip
        return len(rows)


def sweep(
    engine: Engine, *, stall: timedelta, margin: timedelta = timedelta(days=2)
) -> dict[str, int]:
    """Every re-drive once; returns how many rows each queued."""
    expired = expire_reservations(engine, stall=stall)  # first: it outranks a plain redrive
    return {
        "expired_reservations": expired,
        "expiring_authorizations": flag_expiring_authorizations(engine, margin=margin),
        "captures": redrive_captures(engine, stall=stall),
        "refund_rows": redrive_refund_rows(engine, stall=stall),
        "stalled_orders": redrive_stalled_orders(engine, stall=stall),
        "refunds": redrive_refunds(engine, stall=stall),
        "notifications": redrive_notifications(engine, stall=stall),
        "webhooks": redrive_webhooks(engine, stall=stall),
        "label_voids": redrive_label_voids(engine, stall=stall),
        "refunds_at_stripe": poll_refunds_at_stripe(engine, stall=stall),
    }
