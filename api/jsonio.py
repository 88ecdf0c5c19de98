"""Reading and writing JSON bodies with the checks every endpoint shares."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, validation_failed

M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request) -> Any:
    """The parsed body: 415 unless it is JSON, 413 past the size limit, 400 if malformed."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as application/json",
            {"content_type": request.content_type},
        )
    raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


async def read_model(request: web.Request, model: type[M]) -> M:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object")
    return parse(model, body)


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc.errors(include_url=False)) from None


def respond(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )


def respond_data(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )
