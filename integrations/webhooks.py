"""Webhook signature checks the API calls before it trusts a provider's event.

Both use the official SDKs' own verification, so what passes here passes there:
``stripe.WebhookSignature.verify_header`` (``Stripe-Signature: t=…,v1=…``, with a
freshness tolerance: the check ``stripe.Webhook.construct_event`` makes before it builds
an SDK object the API has no use for) and ``easypost.util.validate_webhook``
(``X-Hmac-Signature``). Either way a forged, malformed or stale delivery raises the one
``InvalidSignature``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import easypost.errors
import easypost.util
import stripe

from integrations.errors import InvalidSignature, header

#: Seconds a Stripe signature stays acceptable (Stripe's own default).
STRIPE_TOLERANCE = 300
#: The header EasyPost signs its deliveries with.
EASYPOST_SIGNATURE_HEADER = "X-Hmac-Signature"


class WebhookEvent(NamedTuple):
    """A verified event: its provider id (for de-duplication), its type, and the object
    it is about (Stripe's ``data.object``, EasyPost's ``result``)."""

    id: str
    type: str
    data: dict[str, Any]


def verify_stripe_webhook(
    payload: bytes, sig_header: str | None, secret: str, tolerance: int = STRIPE_TOLERANCE
) -> WebhookEvent:
    try:
        stripe.WebhookSignature.verify_header(payload, sig_header, secret, tolerance)
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise ValueError("the body is not an event")
        data = _object(_object(event.get("data")).get("object"))
    except (stripe.SignatureVerificationError, ValueError, KeyError) as exc:
        raise InvalidSignature(f"stripe webhook rejected: {exc}") from exc
    return WebhookEvent(id=str(event.get("id", "")), type=str(event.get("type", "")), data=data)


def verify_easypost_webhook(
    payload: bytes, headers: Mapping[str, str], secret: str
) -> WebhookEvent:
    # validate_webhook reads the header with a case-sensitive .get(); hand it exactly that.
    signature = header(headers, EASYPOST_SIGNATURE_HEADER)
    signed = {EASYPOST_SIGNATURE_HEADER: signature} if signature else {}
    try:
        event = easypost.util.validate_webhook(payload, signed, secret)
    except (easypost.errors.SignatureVerificationError, ValueError) as exc:
        raise InvalidSignature(f"easypost webhook rejected: {exc}") from exc
    try:
        if not isinstance(event, dict):
            raise ValueError("the body is not an event")
        data = _object(event.get("result"))
    except ValueError as exc:
        raise InvalidSignature(f"easypost webhook rejected: {exc}") from exc
    return WebhookEvent(
        id=str(event.get("id", "")), type=str(event.get("description", "")), data=data
    )


def _object(value: Any) -> dict[str, Any]:
    """A JSON object of the event (empty where the event has none); anything else in its
    place is not an event."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("the event's object is not a JSON object")
    return value
