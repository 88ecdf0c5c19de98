"""The middlewares, outermost first: request id and log context, request metrics, then
the one place where exceptions become JSON error responses."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from api.errors import ApiError
from monitoring import metrics

log = structlog.get_logger("api")

#: An incoming X-Request-ID is kept only when it looks like an id (no log injection).
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

#: aiohttp's own HTTP errors, by status, as the error codes clients see.
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def route_label(request: web.Request) -> str:
    """The route template ("/v1/orders/{order_id}"), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_label(request)
        metrics.http_requests_total.labels(request.method, route, str(status)).inc()
        metrics.http_request_duration_seconds.labels(request.method, route).observe(
            time.perf_counter() - started
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_ERROR_CODES.get(exc.status, "http_error")
        error = ApiError(exc.status, code, exc.reason or code)
        return web.json_response(error.body(), status=exc.status, headers=_allow_header(exc))
    except Exception:
        log.exception("unhandled_error", method=request.method, route=route_label(request))
        error = ApiError(500, "internal_error", "something went wrong on our side")
        return web.json_response(error.body(), status=500)


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


def setup_middlewares(app: web.Application) -> None:
    app.middlewares.extend([request_id_middleware, metrics_middleware, error_middleware])
