"""Reading and writing JSON bodies with the checks every endpoint shares.

Input that would reach PostgreSQL is checked before it can: a body nested deeper than
``MAX_DEPTH`` is refused before the parser recurses into it (Python's own recursion limit
is about 1,000 frames), and text PostgreSQL cannot store (NUL, an unpaired surrogate)
is refused wherever it stands, in a body or a query string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.shared.errors import ApiError, ErrorCode, validation_failed
from fulfillment import jsonout

M = TypeVar("M", bound=BaseModel)

#: Deepest nesting of arrays and objects a JSON body may have (ours need 4; a provider's
#: webhook event about 8).
MAX_DEPTH = 64
#: A JSON string, for stripping strings (and the brackets inside them) before counting;
#: an unterminated one runs to the end, so every match starts at the scan's next quote
#: and the scan stays linear whatever the body holds.
JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
#: Brackets as signed steps: "[" and "{" go one level down (1), "]" and "}" one up (-1).
BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
#: Only escapes can put NUL or a surrogate into parsed JSON (the parser refuses a raw
#: control character, and strict UTF-8 an encoded surrogate): bodies without one skip
#: the walk.
SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
#: Characters a PostgreSQL text value (or jsonb string) cannot hold.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnfitJson(ValueError):
    """A body that is not JSON the API can take; ``code`` says why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def too_deep(raw: bytes, *, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects in ``raw`` nest deeper than ``limit``: a scan in C
    (strings removed, brackets kept as +1/-1 steps, their running sum), no parsing."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    steps = JSON_STRING.sub(b"", raw).translate(BRACKET_STEPS, NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def loads(raw: bytes) -> Any:
    """The parsed body, or ``UnfitJson``: too deep, malformed, or not UTF-8."""
    if too_deep(raw):
        raise UnfitJson(ErrorCode.JSON_TOO_DEEP, f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UnfitJson(ErrorCode.MALFORMED_JSON, f"the body is not valid JSON: {exc}") from None


def unstorable_fields(data: Any, *, raw: bytes | None = None) -> list[str]:
    """Where in ``data`` text holds a character PostgreSQL cannot store (keys count
    too), as dotted paths; with the ``raw`` body it came from, most bodies skip the walk."""
    if raw is not None and not SUSPECT_ESCAPE.search(raw):
        return []
    return [".".join(path) or "body" for path in _unstorable(data, ())]


def unstorable_in(raw: bytes) -> list[str]:
    """``unstorable_fields`` of a JSON body, parsed only when an escape could hide one."""
    return unstorable_fields(loads(raw)) if SUSPECT_ESCAPE.search(raw) else []


def _unstorable(data: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    stack = [(data, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                yield where
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if UNSTORABLE.search(key):
                    yield (*where, _printable(key))
                stack.append((item, (*where, _printable(key))))
        elif isinstance(value, list):
            stack.extend((item, (*where, str(i))) for i, item in enumerate(value))


def _printable(text: str) -> str:
    return UNSTORABLE.sub("\ufffd", text)


def refuse_unstorable(fields: list[str]) -> None:
    """422 naming the fields whose text PostgreSQL cannot store, if there are any."""
    if fields:
        raise validation_failed([
            {"loc": (field,), "type": ErrorCode.INVALID_CHARACTERS,
             "msg": "contains a character that cannot be stored (NUL or an unpaired surrogate)"}
            for field in sorted(fields)
        ])  # fmt: skip


async def read_json(request: web.Request) -> Any:
    """The parsed body: 415 unless it is JSON, 413 past the size limit, 400 if malformed."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "send the body as application/json",
            {"content_type": request.content_type},
        )
    raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    try:
        data = loads(raw)
    except UnfitJson as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    refuse_unstorable(unstorable_fields(data, raw=raw))
    return data


async def read_model(request: web.Request, model: type[M]) -> M:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "the body must be a JSON object")
    return parse(model, body)


async def read_optional_model(request: web.Request, model: type[M]) -> M | None:
    """The body as ``model``, or None when the request has none (a route whose body is
    optional)."""
    if not request.body_exists or request.content_length == 0:
        return None
    return await read_model(request, model)


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
        body=jsonout.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )
