"""EasyPost's HTTP surface under ``/easypost/v2``: JSON bodies, Bearer (or Basic) keys,
EasyPost's ``{"error": {"code", "message", "errors"}}`` answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from sandbox.easypost.ledger import EasyPostLedger
from sandbox.easypost.wire import EasyPostFailure, failure
from sandbox.world import SANDBOX

#: Where the sandbox mounts EasyPost's API.
PREFIX = "/easypost/v2"
#: A 1x1 transparent PNG: what every sandbox label looks like.
LABEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

Operation = Callable[[EasyPostLedger, web.Request, Any], dict[str, Any]]


def setup_easypost_routes(app: web.Application) -> None:
    add = app.router.add_route
    add("POST", f"{PREFIX}/shipments", _endpoint(_create, 201))
    add("GET", f"{PREFIX}/shipments", _endpoint(lambda ep, r, _: ep.list_shipments(r.query)))
    add("GET", PREFIX + "/shipments/{id}", _endpoint(lambda ep, r, _: ep.shipment(_id(r))))
    add("POST", PREFIX + "/shipments/{id}/buy", _endpoint(_buy))
    add("POST", PREFIX + "/shipments/{id}/refund", _endpoint(lambda ep, r, _: ep.refund(_id(r))))
    add("POST", f"{PREFIX}/addresses", _endpoint(lambda ep, _, b: ep.create_address(b), 201))
    add("POST", f"{PREFIX}/addresses/create_and_verify",
        _endpoint(lambda ep, _, b: ep.create_and_verify(b)))  # fmt: skip
    add("GET", PREFIX + "/addresses/{id}", _endpoint(lambda ep, r, _: ep.address(_id(r))))
    add("GET", PREFIX + "/addresses/{id}/verify",
        _endpoint(lambda ep, r, _: ep.verify_address(_id(r))))  # fmt: skip
    add("GET", f"{PREFIX}/trackers", _endpoint(lambda ep, r, _: ep.list_trackers(r.query)))
    add("GET", PREFIX + "/trackers/{id}", _endpoint(lambda ep, r, _: ep.tracker(_id(r))))
    add("GET", "/easypost/labels/{name}", label)
    add("*", "/easypost/{tail:.*}", not_found)


def _create(ledger: EasyPostLedger, request: web.Request, body: Any) -> dict[str, Any]:
    return ledger.create_shipment(body, origin=str(request.url.origin()))


def _buy(ledger: EasyPostLedger, request: web.Request, body: Any) -> dict[str, Any]:
    return ledger.buy(_id(request), body, origin=str(request.url.origin()))


def _id(request: web.Request) -> str:
    return request.match_info["id"]


def _endpoint(operation: Operation, status: int = 200) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        if not _authorized(request.headers.get("Authorization", "")):
            return _failed(failure(401, "APIKEY.REQUIRED", message="An API key is required."))
        body: Any = {}
        if request.method == "POST" and request.can_read_body:
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError):
                return _failed(failure(400, "BAD_REQUEST", message="The request body is not JSON."))
        if not isinstance(body, Mapping):
            return _failed(failure(422, "PARAMETER.INVALID", message="The body must be an object."))
        try:
            result = operation(request.app[SANDBOX].easypost, request, body)
        except EasyPostFailure as exc:
            return _failed(exc)
        return web.json_response(result, status=status)

    return handler


async def label(request: web.Request) -> web.Response:
    return web.Response(body=LABEL_PNG, content_type="image/png")


async def not_found(request: web.Request) -> web.Response:
    return _failed(failure(404, "NOT_FOUND", message="The requested resource could not be found."))


def _authorized(authorization: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() in ("bearer", "basic") and bool(value.strip())


def _failed(exc: EasyPostFailure) -> web.Response:
    return web.json_response(exc.body, status=exc.status)
