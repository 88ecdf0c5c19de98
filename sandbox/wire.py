"""Small wire-format helpers the sandbox shares: ids, timestamps, Stripe's bracketed
form encoding, and the ``field:'value' AND …`` search query languages."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

#: One search clause: ``status:'succeeded'``, ``metadata['order_id']:'42'``,
#: SendGrid's ``unique_args['kind']="welcome"`` or ``to_email="a@b.c"``.
_CLAUSE = re.compile(
    r"""^\s*(?P<field>[a-z_]+)(?:\[(?P<q1>['"])(?P<key>[^'"]+)(?P=q1)\])?\s*[:=]\s*"""
    r"""(?:(?P<q2>['"])(?P<value>[^'"]*)(?P=q2)|(?P<bare>[^\s'"]+))\s*$"""
)
_KEY_PART = re.compile(r"\[([^\]]*)\]")


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:length]}"


def now_unix() -> int:
    return int(time.time())


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def decode_form(body: str) -> dict[str, Any]:
    """``metadata[order_id]=1&payment_method_types[0]=card`` as nested dicts and lists,
    the way Stripe's API reads its form bodies."""
    return decode_pairs(parse_qsl(body, keep_blank_values=True))


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head = raw_key.split("[", 1)[0]
        parts = [head, *_KEY_PART.findall(raw_key[len(head) :])]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part or str(len(node)), {})
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def parse_query(query: str) -> list[tuple[str, str | None, str]]:
    """``a:'x' AND metadata['k']:'y'`` as ``[("a", None, "x"), ("metadata", "k", "y")]``;
    ValueError when a clause does not parse (OR is not supported)."""
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise ValueError(f"could not parse the clause {part.strip()!r}")
        value = match["value"] if match["value"] is not None else match["bare"]
        clauses.append((match["field"], match["key"], value))
    return clauses


def truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes")
