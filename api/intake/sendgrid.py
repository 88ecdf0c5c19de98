"""SendGrid's signed event webhook: delivery events (processed, delivered, bounce,
dropped, spamreport, …) arrive in batches, a JSON array signed with ECDSA over
``timestamp + body`` (``X-Twilio-Email-Event-Webhook-Signature`` and ``…-Timestamp``).

The signature is checked with the SDK's ``EventWebhook`` against
``SENDGRID_WEBHOOK_PUBLIC_KEY``; a missing, forged or stale one (timestamp outside
``TOLERANCE_SECONDS``, so a captured batch cannot be replayed later) is a 400 and
stores nothing. A verified batch is stored by one statement: each event once per
``sg_event_id`` (a batch SendGrid sends again changes nothing), tied to its notification
by the de-duplication key the mailer put in ``custom_args`` (SendGrid echoes them as
fields of each event). An event that says the address is bad flags the customer
(``users.email_status``: ``bounced`` or ``complained``; they then get only essential
e-mail, ``pipelines.mail.notify``) and, for an order's e-mail, writes an ``email_event``
entry in the order's timeline.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web
from psycopg.types.json import Jsonb

from api.intake.providers import Intake
from api.shared.context import SETTINGS, WEBHOOK_WRITER
from api.shared.errors import ApiError, ErrorCode
from api.shared.jsonio import loads, respond_data, too_deep, unstorable_in
from integrations.errors import InvalidSignature
from integrations.webhooks import signature_header
from monitoring import metrics

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: How far a batch's signed timestamp may be from now, either way (as Stripe's 300 s).
TOLERANCE_SECONDS = 300
#: Digits of the longest signature timestamp accepted (Unix seconds have 10 until 2286).
MAX_TIMESTAMP_DIGITS = 12
#: Most events one batch may carry (SendGrid sends up to a few thousand, ~1 MiB).
MAX_EVENTS = 10_000

#: Store the batch's new events, flag the customers and write the orders' timelines;
#: answers ``{event: count}`` of the events stored now (duplicates are not).
STORE_EVENTS = """
    WITH incoming AS (
        SELECT * FROM jsonb_to_recordset(%(events)s) AS e(sg_event_id text, event text,
            email text, reason text, occurred_at timestamptz, dedup_key text, flag text)
    ), stored AS (
        INSERT INTO email_events (sg_event_id, event, notification_id, email, reason,
                                  occurred_at)
        SELECT i.sg_event_id, i.event, n.id, i.email, i.reason, i.occurred_at
        FROM incoming i LEFT JOIN notifications n ON n.dedup_key = i.dedup_key
        ON CONFLICT ON CONSTRAINT uq_email_events_sg_event_id DO NOTHING
        RETURNING sg_event_id, event, notification_id
    ), flagged AS (
        SELECT s.event, i.flag, i.reason, n.user_id, n.order_id, n.kind
        FROM stored s JOIN incoming i ON i.sg_event_id = s.sg_event_id
        JOIN notifications n ON n.id = s.notification_id
        WHERE i.flag IS NOT NULL
    ), customer AS (
        UPDATE users SET email_status = f.flag, email_status_at = now(), updated_at = now()
        FROM (SELECT DISTINCT ON (user_id) user_id, flag FROM flagged
              ORDER BY user_id, flag = 'complained' DESC) AS f
        WHERE users.id = f.user_id AND users.email_status <> f.flag
          AND users.email_status <> 'complained'
    ), timeline AS (
        INSERT INTO order_events (order_id, step, outcome, details)
        SELECT order_id, 'email_event', flag,
               jsonb_build_object('event', event, 'kind', kind, 'reason', reason)
        FROM flagged WHERE order_id IS NOT NULL
    )
    SELECT coalesce(jsonb_object_agg(event, n), '{}'::jsonb)
    FROM (SELECT event, count(*) AS n FROM stored GROUP BY event) AS counted
"""


@functools.cache
def _verifier(public_key: str) -> Any:
    """The SDK's verifier with the key parsed once (imported here: the API process
    loads the SendGrid SDK only when SendGrid first calls)."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    return EventWebhook(public_key)


def verify(payload: bytes, signature: str | None, timestamp: str | None, public_key: str) -> None:
    """Raise ``ApiError`` 400 unless SendGrid signed this body at a recent time."""
    if not signature or not timestamp:
        raise _refused("the event batch is not signed")
    try:
        signature = signature_header(signature, name=SIGNATURE_HEADER)
        timestamp = signature_header(timestamp, name=TIMESTAMP_HEADER)
    except InvalidSignature as exc:
        raise _refused(str(exc)) from None
    # Unix seconds in ASCII digits: int() alone takes Arabic-Indic digits, "1_700" or 400 digits,
    # and a number past a float's range breaks the tolerance check below
    if not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise _refused("the signature timestamp is malformed")
    try:
        stamp = int(timestamp)
        text = payload.decode()
    except (ValueError, UnicodeDecodeError):
        raise _refused("the signature timestamp or the body is malformed") from None
    if abs(time.time() - stamp) > TOLERANCE_SECONDS:
        raise _refused("the signature timestamp is outside the tolerance window")
    try:
        valid = _verifier(public_key).verify_signature(text, signature, timestamp)
    except Exception:  # not base64, not a DER signature: as good as forged
        valid = False
    if not valid:
        raise _refused("the signature does not match the body")


async def sendgrid_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    if too_deep(payload):
        raise _rejected("the batch nests too deep to be SendGrid's")
    public_key = request.app[SETTINGS].sendgrid_webhook_public_key
    verify(payload, request.headers.get(SIGNATURE_HEADER),
           request.headers.get(TIMESTAMP_HEADER), public_key)  # fmt: skip
    if unstorable_in(payload):
        raise _rejected("the batch holds text PostgreSQL cannot store (NUL)")
    try:
        batch = loads(payload)
    except Exception:
        raise _rejected("the body is not JSON") from None
    if not isinstance(batch, list) or len(batch) > MAX_EVENTS:
        raise _rejected(f"the body must be a JSON array of at most {MAX_EVENTS} events")
    rows = list({row["sg_event_id"]: row for row in map(event_row, batch) if row}.values())
    counts: dict[str, int] = {}
    if rows:
        counts = await _store(request, rows)
    for event, count in counts.items():
        metrics.email_events_total.labels(metrics.email_event_label(event)).inc(count)
    stored = sum(counts.values())
    metrics.webhooks_total.labels(PROVIDER, "accepted" if stored else "duplicate").inc()
    return respond_data({"received": True, "duplicate": bool(rows) and not stored})


def event_row(event: Any) -> dict[str, Any] | None:
    """What is kept of one event, or None for one without an id or a type."""
    if not isinstance(event, dict):
        return None
    event_id, kind = event.get("sg_event_id"), event.get("event")
    if not _text(event_id, 255) or not _text(kind, 32):
        return None
    reason = event.get("reason") if _text(event.get("reason"), 2000) else None
    return {
        "sg_event_id": event_id,
        "event": kind,
        "email": event.get("email") if _text(event.get("email"), 320) else None,
        "reason": reason,
        "occurred_at": _time(event.get("timestamp")),
        "dedup_key": event.get("dedup_key") if _text(event.get("dedup_key"), 255) else None,
        "flag": address_flag(kind, reason=reason, bounce_type=event.get("type")),
    }


def address_flag(kind: str, *, reason: str | None, bounce_type: Any) -> str | None:
    """What the event says of the address: ``bounced`` (a hard bounce, or dropped
    because it bounced before), ``complained`` (a spam report, or dropped because of
    one), None otherwise. A ``blocked`` bounce is the receiving server refusing for now
    (SendGrid retries such mail): not the address's fault."""
    if kind == "bounce":
        return None if bounce_type == "blocked" else "bounced"
    if kind == "spamreport":
        return "complained"
    if kind == "dropped" and reason:
        if "bounced address" in reason.lower():
            return "bounced"
        if "spam reporting address" in reason.lower():
            return "complained"
    return None


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _time(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


async def _store(request: web.Request, rows: list[dict[str, Any]]) -> dict[str, int]:
    intake = Intake(statement=STORE_EVENTS, params={"events": Jsonb(rows)})
    try:
        row = await request.app[WEBHOOK_WRITER].submit(intake)
    except psycopg.DataError as exc:
        raise _rejected(f"the batch cannot be stored: {exc}") from None
    return dict(row[0]) if row is not None else {}


def _refused(message: str) -> ApiError:
    metrics.webhooks_total.labels(PROVIDER, "invalid_signature").inc()
    return ApiError(400, ErrorCode.INVALID_SIGNATURE, message)


def _rejected(message: str) -> ApiError:
    metrics.webhooks_total.labels(PROVIDER, "rejected").inc()
    return ApiError(400, ErrorCode.INVALID_EVENT, message)
