"""Webhook signature checks the API calls before it trusts a provider's event.

Both use the official SDKs' own verification, so what passes here passes there:
``stripe.WebhookSignature.verify_header`` (``Stripe-Signature: t=…,v1=…``, with a
freshness tolerance: the check ``stripe.Webhook.construct_event`` makes before it builds
an SDK object the API has no use for) and ``easypost.util.validate_webhook``
(``X-Hmac-Signature``). Either way a forged, malformed or stale delivery raises the one
``InvalidSignature``.

Every signature header goes through ``signature_header`` first: the providers sign in
printable ASCII, and the SDKs compare with ``hmac.compare_digest``, which raises
``TypeError`` on any other text (a stranger's ``v1=é``, or a latin-1 byte aiohttp hands
over as a surrogate escape). Such a header is as good as forged, whoever checks it.
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
#: Longest signature header accepted: Stripe's carries a few signatures during a secret
#: roll (~75 characters each); anything near aiohttp's 8 KiB line limit is not a provider's.
MAX_SIGNATURE_HEADER = 1024


class WebhookEvent(NamedTuple):
    """A verified event: its provider id (for de-duplication), its type, and the object
    it is about (Stripe's ``data.object``, EasyPost's ``result``)."""

    id: str
    type: str
    data: dict[str, Any]


def signature_header(value: str | None, *, name: str) -> str:
    """The header's value if it can be a provider's signature: present, printable ASCII,
    of a sane length. Anything else raises ``InvalidSignature`` before a comparison can
    raise something else."""
    if not value:
        raise InvalidSignature(f"the {name} header is missing")
    if len(value) > MAX_SIGNATURE_HEADER or not (value.isascii() and value.isprintable()):
        raise InvalidSignature(f"the {name} header is malformed")
    return value


def verify_stripe_webhook(
    payload: bytes, sig_header: str | None, secret: str, tolerance: int = STRIPE_TOLERANCE
) -> WebhookEvent:
    try:
        sig_header = signature_header(sig_header, name="Stripe-Signature")
        stripe.WebhookSignature.verify_header(payload, sig_header, secret, tolerance)
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise ValueError("the body is not an event")
        data = _object(_object(event.get("data")).get("object"))
    except InvalidSignature as exc:
        raise InvalidSignature(f"stripe webhook rejected: {exc}") from None
    # TypeError: the SDK's own parsing on a shape no ASCII check foresees
    except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError) as exc:
        raise InvalidSignature(f"stripe webhook rejected: {exc}") from exc
    return WebhookEvent(id=str(event.get("id", "")), type=str(event.get("type", "")), data=data)


def verify_easypost_webhook(
    payload: bytes, headers: Mapping[str, str], secret: str
) -> WebhookEvent:
    # validate_webhook reads the header with a case-sensitive .get(); hand it exactly that.
    try:
        signature = signature_header(header(headers, EASYPOST_SIGNATURE_HEADER),
                                     name=EASYPOST_SIGNATURE_HEADER)  # fmt: skip
    except InvalidSignature as exc:
        raise InvalidSignature(f"easypost webhook rejected: {exc}") from None
    try:
        event = easypost.util.validate_webhook(
            payload, {EASYPOST_SIGNATURE_HEADER: signature}, secret
        )
    except (easypost.errors.SignatureVerificationError, ValueError, TypeError) as exc:
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
