"""``Idempotency-Key``, as Stripe does it.

The same key and body replays the first response; the same key with another body is
``422 idempotency_key_reused``; a request whose key is still being processed is
``409 idempotency_key_in_use``; keys live 24 hours.

The key is claimed with a transaction-scoped advisory lock and its response stored in
the same transaction as the work, so a crash leaves neither an order nor a key behind,
and a concurrent duplicate is told 409 at once instead of waiting. Only successful
responses are stored: a request that failed changed nothing, so retrying it with the
same key simply runs it again.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from api.errors import ApiError
from api.jsonio import respond_data
from fulfillment.models import IdempotencyKey

#: How long a stored response is replayed.
KEY_TTL = timedelta(hours=24)
#: What a key may look like: printable ASCII without spaces, up to 255 characters.
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")

#: What a replay needs of a stored key.
STORED_COLUMNS = (
    IdempotencyKey.id, IdempotencyKey.path, IdempotencyKey.request_hash,
    IdempotencyKey.response_status, IdempotencyKey.response_body, IdempotencyKey.created_at,
)  # fmt: skip

Work = Callable[[AsyncConnection], Awaitable[tuple[int, dict[str, Any]]]]


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not KEY_PATTERN.match(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
        )
    return key


def request_fingerprint(body: Any) -> str:
    """The body's SHA-256 in canonical form: key order and spacing do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_id(user_id: uuid.UUID, key: str) -> int:
    digest = hashlib.sha256(f"{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def run_once(
    request: web.Request,
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    work: Work,
) -> web.Response:
    """Run ``work`` in ``conn``'s open transaction unless ``key`` has run it already."""
    claimed = await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:lock)"), {"lock": _lock_id(user_id, key)}
    )
    if not claimed:
        raise ApiError(
            409,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
    stored = (
        await conn.execute(
            select(*STORED_COLUMNS).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
    ).first()
    if stored is not None and stored.created_at < datetime.now(UTC) - KEY_TTL:
        await conn.execute(delete(IdempotencyKey).where(IdempotencyKey.id == stored.id))
        stored = None
    if stored is not None:
        return _replay(request, stored, fingerprint)
    status, body = await work(conn)
    await conn.execute(
        insert(IdempotencyKey).values(
            user_id=user_id,
            key=key,
            method=request.method,
            path=request.path,
            request_hash=fingerprint,
            response_status=status,
            response_body=body,
        )
    )
    return respond_data(body, status=status)


def _replay(request: web.Request, stored, fingerprint: str) -> web.Response:
    if stored.request_hash != fingerprint or stored.path != request.path:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request; use a new key",
        )
    return respond_data(
        stored.response_body,
        status=stored.response_status,
        headers={"Idempotent-Replayed": "true"},
    )
