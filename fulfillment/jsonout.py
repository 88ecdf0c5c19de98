"""JSON going out of a process (response bodies, JSON stored in PostgreSQL), written by
orjson: the stdlib encoder was about a tenth of the API's CPU on ``POST /v1/orders``
(the response, and the batch's orders and lines as JSON for its one INSERT).

The output is compact UTF-8; keys that are not strings (an integer) become strings, as
the stdlib encoder makes them. What orjson refuses and the stdlib writes (an integer
past 64 bits, say, in a provider's event) is written by the stdlib, so nothing that
was stored before is refused now. Reading JSON stays with the stdlib (``api.shared.jsonio``
refuses what PostgreSQL cannot store by what that parser gives), and so does every
canonical form whose bytes are hashed (the Idempotency-Key fingerprint, the label
ledger's key): their digests must not change under a key already stored.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value, option=OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
