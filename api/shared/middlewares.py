"""The middlewares, outermost first: request id and log context, request metrics with
the access log line, then the one place where exceptions become JSON error responses."""

from __future__ import annotations

import functools
import logging
import re
import secrets
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from api.shared.errors import ApiError, ErrorCode
from api.shared.outages import outage_middleware
from monitoring import metrics

log = structlog.get_logger("api")
#: The standard logger behind ``log``: asked first whether an access line would be kept
#: at all (at WARNING, none is), before structlog builds and drops it.
access_logger = logging.getLogger("api")

#: An incoming X-Request-ID is kept only when it looks like an id (no log injection).
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

#: Method label values; any other method a client sends is counted as ``other`` (a
#: label made of whatever arrives would grow without bound).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Routes polled by probes and Prometheus: their access lines are DEBUG.
QUIET_ROUTES = frozenset({"/healthz", "/readyz"})

#: aiohttp's own HTTP errors, by status, as the error codes clients see.
HTTP_ERROR_CODES = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


def route_label(request: web.Request) -> str:
    """The route template ("/v1/orders/{order_id}"), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every log line of the request carries its id (and the order's, for order routes);
    the id is echoed back, and the outbox passes it on to the worker steps."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else secrets.token_hex(16)
    context = {"request_id": request_id}
    if "order_id" in request.match_info:
        context["order_id"] = request.match_info["order_id"][:64]
    structlog.contextvars.clear_contextvars()  # keep-alive requests share a task
    try:
        with structlog.contextvars.bound_contextvars(**context):
            response = await handler(request)
    except web.HTTPException as exc:  # redirects and the like: still answer with the id
        exc.headers["X-Request-ID"] = request_id
        raise
    finally:
        structlog.contextvars.clear_contextvars()
    response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Times each request once for both the request metrics and the access log line
    (method, route, path, status, duration). Probes and scrapes log at DEBUG so they
    do not drown the rest."""
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
        elapsed = time.perf_counter() - started
        route = route_label(request)
        method = request.method if request.method in METHODS else "other"
        answered, took = _route_metrics(method, route, status)
        answered.inc()
        took.observe(elapsed)
        level = logging.DEBUG if route in QUIET_ROUTES else _level(status)
        if access_logger.isEnabledFor(level):
            log.log(
                level, "request", method=request.method, route=route, path=request.path,
                status=status, duration_ms=round(elapsed * 1000, 2),
            )  # fmt: skip


@functools.cache
def _route_metrics(method: str, route: str, status: int):
    """The labelled request counter and duration histogram of a (method, route, status):
    looked up once, not on every request. Methods, route templates and statuses are
    few, so the cache stays as small as the metrics' own children."""
    return (
        metrics.http_requests_total.labels(method, route, str(status)),
        metrics.http_request_duration_seconds.labels(method, route),
    )


def _level(status: int) -> int:
    return logging.ERROR if status >= 500 else logging.INFO


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers or None)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_ERROR_CODES.get(exc.status, ErrorCode.HTTP_ERROR)
        error = ApiError(exc.status, code, exc.reason or code)
        return web.json_response(error.body(), status=exc.status, headers=_allow_header(exc))
    except Exception:
        log.exception("unhandled_error", method=request.method, route=route_label(request))
        error = ApiError(500, ErrorCode.INTERNAL_ERROR, "something went wrong on our side")
        return web.json_response(error.body(), status=500)


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


def setup_middlewares(app: web.Application) -> None:
    app.middlewares.extend(
        [request_id_middleware, observe_middleware, error_middleware, outage_middleware]
    )
