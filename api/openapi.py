"""The OpenAPI 3.1 description, generated from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.schemas import ErrorResponse

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"{(\w+)}")

#: Error statuses every route of a kind can answer.
COMMON_ERRORS = {"public": (), "user": (401,), "admin": (401, 403)}


def build_openapi(routes, *, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorResponse}
    for route in routes:
        models.update(m for m in (route.request, route.response) if m is not None)
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
            "required": True,
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
            params.append({"name": name, "in": "query", "required": False, "schema": field})
    if route.idempotent_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Same key and body replays the first response for 24 h",
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    return params


def _responses(route) -> dict[str, Any]:
    success: dict[str, Any] = {"description": route.summary}
    if route.response is not None:
        success["content"] = {
            "application/json": {"schema": {"$ref": REF.format(model=route.response.__name__)}}
        }
    elif route.status != 204:
        success["content"] = {route.content_type: {"schema": {"type": "string"}}}
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }
    statuses = list(COMMON_ERRORS[route.auth])
    if route.request is not None:
        statuses += [400, 413, 415, 422]
    if route.query is not None or PATH_PARAM.search(route.path):
        statuses += [404, 422] if route.query is not None else [404]
    responses = {str(route.status): success}
    responses.update({str(status): error for status in sorted(set(statuses))})
    return responses
