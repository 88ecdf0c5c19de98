"""``Idempotency-Key``, as Stripe does it.

The same key and body replays the first response; the same key with another body is
``422 idempotency_key_reused``; a request whose key is still being processed is
``409 idempotency_key_in_use``; keys live 24 hours.

A key is claimed with a transaction-scoped advisory lock and its response is stored in
the same transaction as the work (see ``api/orders/placement.py``), so a crash leaves neither
an order nor a key behind, and a concurrent duplicate is told 409 at once instead of
waiting. Keys belong to one customer: two customers may use the same string.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from aiohttp import web

from api.shared.errors import ApiError, ErrorCode
from fulfillment.models import IDEMPOTENCY_KEY_TTL

#: How long a stored response is replayed.
KEY_TTL = IDEMPOTENCY_KEY_TTL
#: What a key may look like: printable ASCII without spaces, up to 255 characters.
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not KEY_PATTERN.match(key):
        raise ApiError(
            400, ErrorCode.INVALID_IDEMPOTENCY_KEY,
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
        )  # fmt: skip
    return key


def request_fingerprint(body: Any) -> str:
    """The body's SHA-256 in canonical form: key order and spacing do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lock_id(user_id: uuid.UUID, key: str) -> int:
    """The advisory lock that stands for (customer, key) while a request holds it."""
    digest = hashlib.sha256(f"{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def stored_response(stored, *, path: str, fingerprint: str) -> tuple[int, dict[str, Any]]:
    """(status, body) to replay from a stored key row (id, path, request_hash,
    response_status, response_body, created_at); 422 if the request differs."""
    _, stored_path, stored_hash, status, body, _ = stored
    same_request(stored_hash, fingerprint, same_path=stored_path == path)
    return status, body


def same_request(stored_hash: str | None, fingerprint: str, *, same_path: bool = True) -> None:
    """422 ``idempotency_key_reused`` unless the key's first request had this body (and
    route): a row a key created (an order's refund, a return) is answered again only
    for the same request."""
    if stored_hash != fingerprint or not same_path:
        raise ApiError(
            422, ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was used with a different request; use a new key",
        )  # fmt: skip
