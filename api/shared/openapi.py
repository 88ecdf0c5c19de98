"""The OpenAPI 3.1 description, generated from the route table and the pydantic models.

Every status a route can answer is listed with its body: what its auth implies (401,
403), what a JSON body can get wrong (400 malformed or too deep, 413, 415, 422), what
parameters can (404, 422), what only it answers (``Route.errors``), and 503 while
PostgreSQL or Redis is away. ``tests/e2e/test_openapi_conformance.py`` holds the API to it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.shared.schemas import ErrorResponse

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"{(\w+)}")

#: Error statuses every route of a kind can answer.
COMMON_ERRORS = {"public": (), "user": (401,), "admin": (401, 403)}
#: What a route that takes a JSON body can answer for the body alone.
BODY_ERRORS = (400, 413, 415, 422)
#: The header that comes with every 429 and 503.
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def build_openapi(routes, *, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorResponse}
    for route in routes:
        models.update(m for m in (route.request, route.response) if m is not None)
        models.update(e[1] for e in route.errors if isinstance(e, tuple))
    _, schemas = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fulfillment API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{route.handler.__module__.split('.')[-1]}_{route.handler.__name__}",
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route),
        "responses": _responses(route),
    }
    if route.auth != "public":
        operation["security"] = [{"bearer": []}]
    if route.request is not None:
        operation["requestBody"] = {
            "required": not route.request_optional,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=route.request.__name__)}}
            },
        }
    return operation


def _parameters(route) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        schema = route.query.model_json_schema()
        for name, field in schema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": False, "schema": _not_null(field)}
            )
    if route.idempotent_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Same key and body replays the first response for 24 h",
                "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
            }
        )
    return params


def _not_null(field: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the null an optional field allows: a query
    string cannot say null, leaving the parameter out does."""
    options = [o for o in field.get("anyOf", ()) if o != {"type": "null"}]
    if len(options) != 1:
        return field
    rest = {k: v for k, v in field.items() if k not in ("anyOf", "default")}
    return {**rest, **options[0]}


def _responses(route) -> dict[str, Any]:
    success: dict[str, Any] = {"description": route.summary}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": _ref(route.response)}}
    elif route.status != 204:
        success["content"] = {route.content_type: {"schema": {"type": "string"}}}
    responses = {str(route.status): success}
    for status, model in sorted(_errors(route).items()):
        body = {"description": _describe(status),
                "content": {"application/json": {"schema": _ref(model)}}}  # fmt: skip
        if status in (429, 503) and model is ErrorResponse:
            body["headers"] = RETRY_AFTER
        responses[str(status)] = body
    return responses


def _errors(route) -> dict[int, type[BaseModel]]:
    """Every error status of ``route``, with the model of its body."""
    statuses = list(COMMON_ERRORS[route.auth])
    if route.request is not None:
        statuses += BODY_ERRORS
    if route.query is not None:
        statuses.append(422)
    if PATH_PARAM.search(route.path):
        statuses.append(404)
    if not route.standalone:
        statuses.append(503)
    errors: dict[int, type[BaseModel]] = dict.fromkeys(statuses, ErrorResponse)
    for error in route.errors:
        status, model = error if isinstance(error, tuple) else (error, ErrorResponse)
        errors[status] = model
    return errors


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _describe(status: int) -> str:
    return {
        400: "malformed request (bad JSON, nested too deep, bad header) or signature",
        401: "no valid credentials",
        403: "the account may not do this",
        404: "no such resource",
        409: "conflicts with the resource's state",
        413: "the body is over 1 MiB",
        415: "the body is not application/json",
        422: "a field or parameter is invalid (named in details)",
        429: "too many requests; retry after Retry-After seconds",
        501: "not available with this broker",
        503: "PostgreSQL or Redis is unreachable; retry after Retry-After seconds",
    }.get(status, "error")
