"""``POST /v1/orders`` placements handed straight to an ``OrderWriter`` (group commit),
as the handler makes them: for tests that choose which placements share a batch."""

from __future__ import annotations

from api.orders.placement import Placement
from api.orders.schemas import OrderCreate
from api.shared.idempotency import request_fingerprint


def placement(customer_id, body: dict, *, key: str | None = None) -> Placement:
    fingerprint = request_fingerprint(body) if key else ""
    return Placement(customer_id=customer_id, body=OrderCreate.model_validate(body), key=key,
                     fingerprint=fingerprint, path="/v1/orders", request_id=None)  # fmt: skip
