"""Stripe's HTTP surface at ``/v1``: form-encoded bodies (query strings for GET and
DELETE), Bearer (or Basic) API keys, ``Idempotency-Key`` on every POST, ``Request-Id`` on
every answer."""

from __future__ import annotations

import base64
import binascii
import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from sandbox.stripe.ledger import StripeLedger
from sandbox.stripe.wire import Stored, StripeFailure, fingerprint, invalid
from sandbox.wire import decode_form, decode_pairs, new_id
from sandbox.world import SANDBOX

Operation = Callable[[StripeLedger, Mapping[str, str], dict[str, Any]], dict[str, Any]]

#: Stripe's answer to a request without an API key.
NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


def setup_stripe_routes(app: web.Application) -> None:
    add = app.router.add_route
    add("POST", "/v1/payment_intents", _post(lambda ledger, _, p: ledger.create_intent(p)))
    add("GET", "/v1/payment_intents", _get(lambda ledger, _, q: ledger.list_intents(q)))
    add("GET", "/v1/payment_intents/search", _get(lambda ledger, _, q: ledger.search_intents(q)))
    add(
        "GET",
        "/v1/payment_intents/{id}",
        _get(lambda ledger, m, q: ledger.retrieve_intent(m["id"], q)),
    )
    add(
        "POST",
        "/v1/payment_intents/{id}/confirm",
        _post(lambda ledger, m, p: ledger.confirm_intent(m["id"], p)),
    )
    add(
        "POST",
        "/v1/payment_intents/{id}/cancel",
        _post(lambda ledger, m, p: ledger.cancel_intent(m["id"], p)),
    )
    add(
        "POST",
        "/v1/payment_intents/{id}/capture",
        _post(lambda ledger, m, p: ledger.capture_intent(m["id"], p)),
    )
    add("POST", "/v1/refunds", _post(lambda ledger, _, p: ledger.create_refund(p)))
    add("GET", "/v1/refunds", _get(lambda ledger, _, q: ledger.list_refunds(q)))
    add("GET", "/v1/refunds/{id}", _get(lambda ledger, m, _: ledger.refund(m["id"])))
    _setup_webhook_routes(app)
    _setup_tax_routes(app)
    add("*", "/v1/{tail:.*}", _unrecognized)


def _setup_webhook_routes(app: web.Application) -> None:
    """Webhook endpoints and the events they are sent (``stripe_endpoints``)."""
    add = app.router.add_route
    endpoint = "/v1/webhook_endpoints/{id}"
    add("POST", "/v1/webhook_endpoints", _post(lambda ledger, _, p: ledger.endpoints.create(p)))
    add(
        "GET",
        "/v1/webhook_endpoints",
        _get(lambda ledger, _, q: ledger.endpoints.list_endpoints(q)),
    )
    add("GET", endpoint, _get(lambda ledger, m, _: ledger.endpoints.endpoint(m["id"])))
    add("POST", endpoint, _post(lambda ledger, m, p: ledger.endpoints.update(m["id"], p)))
    add("DELETE", endpoint, _get(lambda ledger, m, _: ledger.endpoints.delete(m["id"])))
    add("GET", "/v1/events", _get(lambda ledger, _, q: ledger.endpoints.list_events(q)))
    add("GET", "/v1/events/{id}", _get(lambda ledger, m, _: ledger.endpoints.event(m["id"])))


def _setup_tax_routes(app: web.Application) -> None:
    """Stripe Tax: calculations, and the transactions that record or reverse them."""
    add = app.router.add_route
    add("POST", "/v1/tax/calculations", _post(lambda ledger, _, p: ledger.tax.calculate(p)))
    add("POST", "/v1/tax/transactions/create_from_calculation",
        _post(lambda ledger, _, p: ledger.tax.record(p)))  # fmt: skip
    add("POST", "/v1/tax/transactions/create_reversal",
        _post(lambda ledger, _, p: ledger.tax.reverse(p)))  # fmt: skip
    for collection in ("calculations", "transactions"):
        one = f"/v1/tax/{collection}/{{id}}"
        add("GET", one,
            _get(lambda ledger, m, q, c=collection: ledger.tax.retrieve(c, m["id"], q)))  # fmt: skip
        add("GET", f"{one}/line_items",
            _get(lambda ledger, m, q, c=collection: ledger.tax.line_items(c, m["id"], q)))  # fmt: skip


def _post(operation: Operation) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        request_id = new_id("req", 14)
        if (denied := _denied(request, request_id)) is not None:
            return denied
        params = decode_form(await request.text())
        ledger = request.app[SANDBOX].stripe
        key = request.headers.get("Idempotency-Key")
        try:
            stored = ledger.keys.replay(key, method="POST", path=request.path, params=params)
            if stored is not None:
                replayed = {"Idempotent-Replayed": "true", "Original-Request": stored.request_id}
                return _answer(
                    request, stored.status, stored.body, request_id=request_id, extra=replayed
                )
            status, body = 200, operation(ledger, request.match_info, params)
        except StripeFailure as failure:
            status, body = failure.status, failure.body
            if not failure.stored:
                return _answer(request, status, body, request_id=request_id)
        if key:  # a snapshot: a replay answers what was answered, not what is now
            snapshot = copy.deepcopy(body)
            seen = Stored(
                "POST", request.path, fingerprint(params), status, snapshot, request_id, time.time()
            )
            ledger.keys.remember(key, seen)
        return _answer(request, status, body, request_id=request_id)

    return handler


def _get(operation: Operation) -> Callable[[web.Request], Any]:
    """GET and DELETE: parameters in the query string, no idempotency keys."""

    async def handler(request: web.Request) -> web.Response:
        request_id = new_id("req", 14)
        if (denied := _denied(request, request_id)) is not None:
            return denied
        query = decode_pairs(request.query.items())
        try:
            body = operation(request.app[SANDBOX].stripe, request.match_info, query)
        except StripeFailure as failure:
            return _answer(request, failure.status, failure.body, request_id=request_id)
        return _answer(request, 200, body, request_id=request_id)

    return handler


async def _unrecognized(request: web.Request) -> web.Response:
    failure = invalid(
        f"Unrecognized request URL ({request.method}: {request.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        status=404,
    )
    return _answer(request, failure.status, failure.body, request_id=new_id("req", 14))


def _denied(request: web.Request, request_id: str) -> web.Response | None:
    key = api_key(request.headers.get("Authorization", ""))
    if not key:
        failure = invalid(NO_KEY_MESSAGE, status=401)
    elif not key.startswith(("sk_", "rk_")):
        failure = invalid(f"Invalid API Key provided: {key[:8]}{'*' * 8}", status=401)
    else:
        return None
    return _answer(request, failure.status, failure.body, request_id=request_id)


def api_key(authorization: str) -> str | None:
    """The key from ``Bearer <key>`` or ``Basic base64(<key>:)``."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode().split(":", 1)[0] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _answer(
    request: web.Request,
    status: int,
    body: dict[str, Any],
    *,
    request_id: str,
    extra: Mapping[str, str] | None = None,
) -> web.Response:
    headers = {"Request-Id": request_id, **(extra or {})}
    if version := request.headers.get("Stripe-Version"):
        headers["Stripe-Version"] = version
    return web.json_response(body, status=status, headers=headers)
