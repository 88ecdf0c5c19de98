"""``/v1/admin/webhook-endpoints``: the merchant's webhook endpoints, their deliveries,
and redelivery. Admins only (``api.shared.access``).

A URL is checked when it is registered or changed (``fulfillment.destinations``): https
only (http to loopback in development), and in production the host must resolve to
public addresses only; the delivery checks it again before every connection. The signing
secret is answered only when the endpoint is created and when it is rotated.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from aiohttp import web
from sqlalchemy import delete, func, insert, text, update

from api.merchant_webhooks.schemas import (
    AttemptOut,
    AttemptPage,
    EndpointCreate,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    Redelivered,
    RedeliverRequest,
)
from api.shared.context import SESSIONS, SETTINGS
from api.shared.errors import ApiError, ErrorCode, not_found, path_uuid
from api.shared.jsonio import read_model, respond
from api.shared.paging import PageQuery, page_of, query_model
from fulfillment.destinations import RefusedUrl, check_url
from fulfillment.merchant_events import ALL_EVENTS, DISPATCH_LEASE_SECONDS, new_secret
from fulfillment.messages import DELIVER_WEBHOOK
from fulfillment.models import MerchantEvent, WebhookAttempt, WebhookEndpoint
from fulfillment.outbox import current_request_id

#: The longest a URL's host may take to resolve at registration.
RESOLVE_SECONDS = 5.0
#: The most events one redelivery request queues (ask again from the last one's time).
MAX_REDELIVER = 10_000

W = WebhookEndpoint


def endpoint_out(endpoint: WebhookEndpoint, model: type[EndpointOut] = EndpointOut, **extra):
    return model(
        id=endpoint.id, url=endpoint.url, events=list(endpoint.event_types),
        disabled=endpoint.disabled, disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason, failing_since=endpoint.failing_since,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        created_at=endpoint.created_at, updated_at=endpoint.updated_at, **extra,
    )  # fmt: skip


def endpoint_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "endpoint_id", "webhook endpoint")


async def checked_url(request: web.Request, url: str) -> str:
    """``url`` if webhooks may go there; 422 with the refusal's code if not."""
    production = not request.app[SETTINGS].is_development
    try:
        await asyncio.wait_for(asyncio.to_thread(check_url, url, production=production),
                               RESOLVE_SECONDS)  # fmt: skip
    except RefusedUrl as exc:
        raise ApiError(422, ErrorCode(exc.code), str(exc), {"field": "url"}) from None
    except TimeoutError:
        raise ApiError(422, ErrorCode.UNRESOLVABLE_HOST, "the URL's host did not resolve in time",
                       {"field": "url"}) from None  # fmt: skip
    return url


def _types(events: list[str]) -> list[str]:
    return [ALL_EVENTS] if ALL_EVENTS in events else sorted(set(events))


async def create_endpoint(request: web.Request) -> web.Response:
    body = await read_model(request, EndpointCreate)
    url = await checked_url(request, body.url)
    secret = new_secret()
    async with request.app[SESSIONS]() as session, session.begin():
        endpoint = await session.scalar(
            insert(W)
            .values(id=uuid.uuid4(), url=url, event_types=_types(body.events), secret=secret)
            .returning(W)
        )
    return respond(endpoint_out(endpoint, EndpointWithSecret, secret=secret), status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    query = query_model(request, PageQuery)
    async with request.app[SESSIONS]() as session:
        rows, total = await page_of(session, W, query, order_by=(W.created_at, W.id))
        items = [endpoint_out(endpoint) for endpoint in rows]
    return respond(EndpointList(items=items, total=total, page=query.page, limit=query.limit))


async def get_endpoint(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        endpoint = await session.get(W, endpoint_id(request))
    if endpoint is None:
        raise not_found("webhook endpoint")
    return respond(endpoint_out(endpoint))


async def update_endpoint(request: web.Request) -> web.Response:
    body = await read_model(request, EndpointUpdate)
    changes = body.model_dump(exclude_unset=True)
    values: dict = {"updated_at": func.now()}
    if "url" in changes:
        values["url"] = await checked_url(request, changes["url"])
    if "events" in changes:
        values["event_types"] = _types(changes["events"])
    if changes.get("disabled") is True:
        values |= {"disabled": True, "disabled_at": func.now(),
                   "disabled_reason": "disabled by an admin"}  # fmt: skip
    elif changes.get("disabled") is False:  # enabled again: its past failures are forgiven
        values |= {"disabled": False, "disabled_at": None, "disabled_reason": None,
                   "failing_since": None}  # fmt: skip
    return await _changed(request, values)


async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret; the old one keeps signing beside it for the grace period."""
    grace = timedelta(seconds=request.app[SETTINGS].webhook_secret_grace_seconds)
    secret = new_secret()
    values = {"previous_secret": W.secret, "previous_secret_expires_at": func.now() + grace,
              "secret": secret, "updated_at": func.now()}  # fmt: skip
    return await _changed(request, values, secret=secret)


async def _changed(request: web.Request, values: dict, *, secret: str | None = None):
    async with request.app[SESSIONS]() as session, session.begin():
        endpoint = await session.scalar(
            update(W).where(W.id == endpoint_id(request)).values(**values).returning(W)
        )
    if endpoint is None:
        raise not_found("webhook endpoint")
    if secret is not None:
        return respond(endpoint_out(endpoint, EndpointWithSecret, secret=secret))
    return respond(endpoint_out(endpoint))


async def delete_endpoint(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session, session.begin():
        gone = await session.scalar(delete(W).where(W.id == endpoint_id(request)).returning(W.id))
    if gone is None:
        raise not_found("webhook endpoint")
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    """Every attempt at the endpoint's deliveries, newest first."""
    query = query_model(request, PageQuery)
    eid = endpoint_id(request)
    mine = WebhookAttempt.endpoint_id == eid
    async with request.app[SESSIONS]() as session:
        if await session.get(W, eid) is None:
            raise not_found("webhook endpoint")
        rows, total = await page_of(session, WebhookAttempt, query, where=(mine,),
                                    order_by=(WebhookAttempt.id.desc(),))  # fmt: skip
        items = [AttemptOut.model_validate(row, from_attributes=True) for row in rows]
    return respond(AttemptPage(items=items, total=total, page=query.page, limit=query.limit))


#: Deliveries of the picked events to one endpoint, queued again (a new delivery, or the
#: old one pending once more, with a fresh retry window), and their outbox rows.
_REDELIVER = """
    WITH picked AS ({picked} ORDER BY e.created_at, e.id LIMIT {limit}),
    queued AS (
        INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at)
        SELECT picked.id, :endpoint, now() + interval '{lease} seconds' FROM picked
        ON CONFLICT (event_id, endpoint_id) DO UPDATE
        SET status = 'pending', next_attempt_at = EXCLUDED.next_attempt_at, retry_from = now()
        RETURNING id)
    INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
    SELECT '{queue}', '{actor}', jsonb_build_object('delivery_id', queued.id::text),
           CAST(:request_id AS text)
    FROM queued
"""
_ONE = "SELECT e.id, e.created_at FROM merchant_events e WHERE e.id = :event"
_RANGE = """
    SELECT e.id, e.created_at FROM merchant_events e
    WHERE e.created_at >= :start AND e.created_at < :end
      AND (e.type = ANY(:types) OR '*' = ANY(:types))
"""


def _redeliver_sql(picked: str):
    return text(_REDELIVER.format(picked=picked, limit=MAX_REDELIVER, lease=DISPATCH_LEASE_SECONDS,
                                  queue=DELIVER_WEBHOOK[1], actor=DELIVER_WEBHOOK[0]))  # fmt: skip


REDELIVER_ONE, REDELIVER_RANGE = _redeliver_sql(_ONE), _redeliver_sql(_RANGE)


async def redeliver(request: web.Request) -> web.Response:
    """Send events again, with their own ids: one, or those of a time range."""
    body = await read_model(request, RedeliverRequest)
    eid = endpoint_id(request)
    async with request.app[SESSIONS]() as session, session.begin():
        endpoint = await session.get(W, eid, with_for_update=True)
        if endpoint is None:
            raise not_found("webhook endpoint")
        if endpoint.disabled:
            raise ApiError(
                409, ErrorCode.ENDPOINT_DISABLED, "enable the endpoint before redelivering"
            )
        params = {"endpoint": eid, "request_id": current_request_id()}
        if body.event_id is not None:
            if await session.get(MerchantEvent, body.event_id) is None:
                raise not_found("event")
            result = await session.execute(REDELIVER_ONE, {**params, "event": body.event_id})
        else:
            result = await session.execute(REDELIVER_RANGE, {
                **params, "start": body.from_, "end": body.to, "types": endpoint.event_types,
            })  # fmt: skip
    return respond(Redelivered(redelivered=result.rowcount), status=202)
