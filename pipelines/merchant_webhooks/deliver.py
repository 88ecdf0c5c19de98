"""Delivering an order event to a merchant's endpoint: one message per (event,
endpoint), written by the orders trigger (``fulfillment.merchant_events``) or by the
scheduler when a retry is due (``workers.webhook_dispatch``).

The step reads the delivery, renders the event with the order as the API shows it
(``fulfillment.order_view``), signs it (Stripe's scheme, with the old secret too while a
rotation's grace period lasts), POSTs it with a timeout, and records the attempt in one
commit: delivered on a 2xx; otherwise retried later with exponential backoff and jitter,
until ``WEBHOOK_RETRY_FOR_SECONDS`` after the first try. An endpoint whose deliveries have
all failed for ``WEBHOOK_DISABLE_AFTER_SECONDS`` is disabled and the admins get an
e-mail. At least once: the receiver de-duplicates by event id and orders an order's
events by their sequence number.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import any_, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Session

from fulfillment import jsonout
from fulfillment import merchant_events as events
from fulfillment.messages import SEND_NOTIFICATION
from fulfillment.models import (
    MerchantEvent,
    OrderLine,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from fulfillment.order_view import order_from_snapshot, order_out
from fulfillment.settings import Settings
from monitoring import metrics
from pipelines import sql
from pipelines.common import FAILED, SKIPPED, SUCCESS, after_commit, begin, reading, send_later
from pipelines.deps import Deps
from pipelines.merchant_webhooks import http as webhook_http

log = structlog.get_logger("pipelines.merchant_webhooks")

#: The e-mail the admins get when an endpoint is disabled.
DISABLED_MAIL = "webhook_endpoint_disabled"

D, E, P = WebhookDelivery, MerchantEvent, WebhookEndpoint
_LOAD = (
    select(D.id, D.status, D.attempts, D.retry_from, D.endpoint_id, E.id.label("event_id"),
           E.type, E.sequence, E.order_id, E.snapshot, E.created_at, P.url, P.secret,
           P.previous_secret, P.previous_secret_expires_at, P.disabled, P.failing_since)
    .join(E, E.id == D.event_id).join(P, P.id == D.endpoint_id)
    .where(D.id == any_(bindparam("b_deliveries", type_=ARRAY(PG_UUID))))
)  # fmt: skip
_LINES = (
    select(OrderLine.order_id, OrderLine.product_id, OrderLine.sku, OrderLine.name,
           OrderLine.quantity, OrderLine.unit_price)
    .where(OrderLine.order_id == any_(bindparam("b_orders", type_=ARRAY(PG_UUID))))
    .order_by(OrderLine.order_id, OrderLine.position)
)  # fmt: skip
_ATTEMPT = insert(WebhookAttempt).values(
    {column: bindparam(f"b_{column}") for column in (
        "delivery_id", "endpoint_id", "event_id", "event_type", "attempt", "outcome",
        "response_code", "latency_ms", "error", "created_at")}
)  # fmt: skip
#: The delivery after an attempt; only a pending one changes (a duplicate message that
#: ran at the same time leaves the first one's result), and only as the batch read it: a
#: redelivery asked while the batch waited on its answer (``retry_from`` moved) stands,
#: and its own message sends the event again.
_SAME = (D.status == "pending", D.retry_from == bindparam("b_retry_from"))
_AFTER_ATTEMPT = (
    update(D).where(D.id == bindparam("b_delivery"), *_SAME)
    .values(status=bindparam("b_status"), attempts=D.attempts + 1,
            next_attempt_at=bindparam("b_next"), delivered_at=bindparam("b_delivered_at"),
            last_status_code=bindparam("b_code"), last_error=bindparam("b_error"))
)  # fmt: skip
_ABANDON = (
    update(D).where(D.id == bindparam("b_delivery"), D.status == "pending")
    .values(status="abandoned", last_error="the endpoint is disabled")
)  # fmt: skip
#: A delivery not tried in its batch (its endpoint gave no answer to an earlier one).
_DEFER = (
    update(D).where(D.id == bindparam("b_delivery"), *_SAME)
    .values(next_attempt_at=bindparam("b_next"))
)  # fmt: skip
_HEALTHY = update(P).where(P.id == bindparam("b_endpoint")).values(failing_since=None)
_FAILING = (
    update(P).where(P.id == bindparam("b_endpoint"))
    .values(failing_since=func.coalesce(P.failing_since, bindparam("b_now")))
    .returning(P.failing_since, P.disabled)
)  # fmt: skip
_DISABLE = (
    update(P).where(P.id == bindparam("b_endpoint"), P.disabled.is_(False))
    .values(disabled=True, disabled_at=bindparam("b_now"), disabled_reason=bindparam("b_reason"))
    .returning(P.id, P.url)
)  # fmt: skip
#: One e-mail per active admin for one disabling (keyed by the endpoint and its time).
_TELL_ADMINS = text("""
    INSERT INTO notifications (dedup_key, kind, user_id, data)
    SELECT concat_ws('_', 'user', id, CAST(:kind AS text), CAST(:endpoint AS text),
                     CAST(:stamp AS text)), CAST(:kind AS text), id,
           jsonb_build_object('endpoint_id', CAST(:endpoint AS text), 'url', CAST(:url AS text),
                              'reason', CAST(:reason AS text))
    FROM users WHERE role = 'admin' AND is_active
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
""")


def deliver_webhook(deps: Deps, delivery_id: str, *, attempt: int = 1) -> str:
    """One delivery: an admin's redelivery, or a message queued before batches."""
    return deliver_webhooks(deps, [delivery_id], attempt=attempt)


def deliver_webhooks(deps: Deps, delivery_ids: list[str], *, attempt: int = 1) -> str:
    """A batch of deliveries, in the order given (the scheduler's: an order's events in
    sequence): each still pending is rendered, signed and POSTed, an endpoint's over one
    kept-alive connection, and every attempt is recorded in one commit. An endpoint
    that gave no answer at all (refused, timed out, unreachable) is not called again in
    this batch: its later deliveries wait as long as the failed one, no attempt made."""
    ids = [uuid.UUID(str(i)) for i in delivery_ids]
    with reading(deps) as session:
        found = {row.id: row for row in sql.rows(session, _LOAD, {"b_deliveries": ids})
                 if row.status == "pending"}  # fmt: skip
        pending = [found[i] for i in dict.fromkeys(ids) if i in found]
        if not pending:
            return SKIPPED  # delivered, given up on, or their endpoint deleted
        lines: dict[uuid.UUID, list[Any]] = {}
        for line in sql.rows(session, _LINES, {"b_orders": list({r.order_id for r in pending})}):
            lines.setdefault(line.order_id, []).append(line)
    abandoned = [row for row in pending if row.disabled]
    if abandoned:
        with begin(deps) as session:
            for row in abandoned:
                if sql.run(session, _ABANDON, {"b_delivery": row.id}):
                    after_commit(session, metrics.webhook_deliveries_total.labels("abandoned").inc)
    tried: list[tuple[Any, webhook_http.Answer | None]] = []
    silent: set[uuid.UUID] = set()  # endpoints that gave no answer
    with webhook_http.Poster(production=not deps.settings.is_development,
                             timeout=deps.settings.webhook_timeout_seconds) as poster:  # fmt: skip
        for row in pending:
            if row.disabled:
                continue
            if row.endpoint_id in silent:
                tried.append((row, None))
                continue
            body = render(row, lines.get(row.order_id, []))
            answer = poster.post(row.url, body, _headers(row, body, now=deps.now(),
                                                         attempt=row.attempts + 1))  # fmt: skip
            if answer.status is None:
                silent.add(row.endpoint_id)
            tried.append((row, answer))
            log.info("webhook_attempt", delivery_id=str(row.id), event_id=row.event_id,
                     event_type=row.type, status=answer.status, error=answer.error,
                     seconds=round(answer.seconds, 3))  # fmt: skip
    if not tried:
        return SKIPPED
    _record(deps, tried)
    return SUCCESS if all(a is not None and a.delivered for _, a in tried) else FAILED


def render(row: Any, lines: list[Any]) -> bytes:
    """The event's JSON body: the same bytes for every attempt at it. An event raised by
    one package of several (its timeline entry names it) carries it as ``data.package``."""
    order = order_out(order_from_snapshot(row.snapshot, lines)).model_dump(mode="json")
    payload = {
        "id": row.event_id, "object": "event", "type": row.type, "sequence": row.sequence,
        "created_at": row.created_at.isoformat(), "order_id": str(row.order_id),
        "data": {"object": order},
    }  # fmt: skip
    named = (row.snapshot.get("event_package") or {}).get("id")
    if named:  # raised by one package of several: the event names it
        payload["data"]["package"] = next(
            (p for p in order["packages"] if p["id"] == named), row.snapshot["event_package"]
        )
    return jsonout.dumps(payload)


def _headers(row: Any, body: bytes, *, now: datetime, attempt: int) -> dict[str, str]:
    keys = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        keys.append(row.previous_secret)
    return {
        "Content-Type": "application/json",
        "User-Agent": "Fulfillment-Webhooks/1.0",
        events.SIGNATURE_HEADER: events.signature_header(keys, int(time.time()), body),
        events.EVENT_ID_HEADER: row.event_id,
        events.DELIVERY_ID_HEADER: str(row.id),
        events.ATTEMPT_HEADER: str(attempt),
    }


def next_delay(settings: Settings, attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling from the
    minimum, capped, with jitter (between half and all of it), so endpoints that failed
    together are not all retried at the same instant."""
    delay = min(settings.webhook_retry_max_seconds,
                settings.webhook_retry_min_seconds * 2 ** min(attempts - 1, 32))  # fmt: skip
    return delay * random.uniform(0.5, 1.0)


def _record(deps: Deps, tried: list[tuple[Any, webhook_http.Answer | None]]) -> None:
    """Every attempt of a batch, and each delivery after it, in one commit; a delivery
    not tried (its endpoint gave no answer earlier in the batch) waits as long as the
    one that failed, with no attempt counted. Only a pending delivery changes (a
    duplicate message that ran at the same time leaves the first one's result)."""
    settings, now = deps.settings, deps.now()
    attempts, after, deferred, outcomes = [], [], [], []
    next_of: dict[uuid.UUID, datetime] = {}
    # by endpoint: (any attempt answered 2xx, the last attempt failed, was it failing)
    endpoints: dict[uuid.UUID, tuple[bool, bool, bool]] = {}
    for row, answer in tried:
        if answer is None:
            deferred.append((row, next_of.get(row.endpoint_id, now)))
            continue
        count = row.attempts + 1
        if answer.delivered:
            status, outcome, next_at = "delivered", "delivered", now
        elif now - row.retry_from >= timedelta(seconds=settings.webhook_retry_for_seconds):
            status, outcome, next_at = "failed", "failed", now
        else:
            status, outcome = "pending", "retry"
            next_at = now + timedelta(seconds=next_delay(settings, count))
        next_of.setdefault(row.endpoint_id, next_at)
        ok, _, failing = endpoints.get(row.endpoint_id, (False, False, False))
        endpoints[row.endpoint_id] = (ok or answer.delivered, not answer.delivered,
                                      failing or row.failing_since is not None)  # fmt: skip
        outcomes.append((outcome, answer.seconds))
        attempts.append({
            "b_delivery_id": row.id, "b_endpoint_id": row.endpoint_id, "b_event_id": row.event_id,
            "b_event_type": row.type, "b_attempt": count,
            "b_outcome": "delivered" if answer.delivered else "failed",
            "b_response_code": answer.status, "b_latency_ms": round(answer.seconds * 1000),
            "b_error": answer.error, "b_created_at": now,
        })  # fmt: skip
        after.append({
            "b_delivery": row.id, "b_status": status, "b_next": next_at,
            "b_delivered_at": now if answer.delivered else None, "b_code": answer.status,
            "b_error": answer.error, "b_retry_from": row.retry_from,
        })  # fmt: skip
    with begin(deps) as session:
        if attempts:
            sql.run_many(session, _ATTEMPT, attempts)
            sql.run_many(session, _AFTER_ATTEMPT, after)
        for row, next_at in deferred:
            sql.run(session, _DEFER, {"b_delivery": row.id, "b_next": next_at,
                                      "b_retry_from": row.retry_from})  # fmt: skip
        # as if one after the other: a success clears the endpoint's failing time, a
        # failure after it (or without one) starts it again
        for endpoint_id, (ok, last_failed, failing) in endpoints.items():
            if ok and (failing or last_failed):
                sql.run(session, _HEALTHY, {"b_endpoint": endpoint_id})
            if last_failed:
                _count_failure(session, settings, endpoint_id=endpoint_id, now=now)
        for outcome, seconds in outcomes:
            after_commit(session, metrics.webhook_deliveries_total.labels(outcome).inc)
            after_commit(session, lambda s=seconds: metrics.webhook_delivery_seconds.observe(s))


def _count_failure(session: Session, settings: Settings, *, endpoint_id: uuid.UUID,
                   now: datetime) -> None:  # fmt: skip
    """The endpoint has failed since its first failure after a success; past the limit,
    it is disabled and every active admin is told (through the e-mail outbox)."""
    failing = sql.one(session, _FAILING, {"b_endpoint": endpoint_id, "b_now": now})
    limit = timedelta(seconds=settings.webhook_disable_after_seconds)
    if failing is None or failing.disabled or now - failing.failing_since < limit:
        return
    reason = f"every delivery failed since {failing.failing_since.isoformat()}"
    disabled = sql.one(session, _DISABLE, {"b_endpoint": endpoint_id, "b_now": now,
                                           "b_reason": reason})  # fmt: skip
    if disabled is None:
        return
    mails = session.execute(_TELL_ADMINS, {
        "kind": DISABLED_MAIL, "endpoint": str(endpoint_id), "stamp": str(int(now.timestamp())),
        "url": disabled.url, "reason": reason,
    }).scalars().all()  # fmt: skip
    for notification_id in mails:
        send_later(session, SEND_NOTIFICATION, notification_id=notification_id)
    after_commit(session, metrics.webhook_endpoints_disabled_total.inc)
    log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint_id), url=disabled.url,
                reason=reason)  # fmt: skip
