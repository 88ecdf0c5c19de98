"""SendGrid's Event Webhook, as the sandbox plays it: after each mail it accepts, one
signed batch (a JSON array) of that mail's events, per recipient ``processed`` then
``delivered``, or ``bounce`` for an address at ``BOUNCE_DOMAIN`` (SendGrid documents
no address that bounces on purpose; its sandbox mode sends nothing and so reports
nothing). Each event carries the mail's ``custom_args`` as fields of its own, as
SendGrid's do, so the receiver can tie it to what it sent.

Batches are signed as SendGrid's Signed Event Webhook signs them: ECDSA P-256 with
SHA-256 over ``timestamp + body``, the DER signature in base64 in
``X-Twilio-Email-Event-Webhook-Signature`` and the Unix time in
``X-Twilio-Email-Event-Webhook-Timestamp``, with the sandbox's private key, whose public
half is ``fulfillment.settings.SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY`` (the API's key in
development). Signing uses ``cryptography``, as the SDK's verifier does.
"""

from __future__ import annotations

import base64
import functools
import os
import time
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

#: The sandbox's signing key; development only (its public half is in the settings).
SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQE5AgiQbNczBRjTR
LreLPIc4W7AKpprSaf2iYLfzR0+hRANCAASutY96DRGlOKABaLA0lXjMigCcjqhl
G9j2pcUldTAdQI0on/RJfHkp4/bQzSQJ+p4JLlfKRj/xym64o6iUPTp+
-----END PRIVATE KEY-----
"""
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: Mail to any address at this domain bounces (a hard bounce: no such mailbox).
BOUNCE_DOMAIN = "bounce.example.com"
#: What the receiving server answered, as SendGrid reports it.
DELIVERED_RESPONSE = "250 2.0.0 OK"
BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist."


def bounces(address: str) -> bool:
    return address.rpartition("@")[2].lower() == BOUNCE_DOMAIN


@functools.cache
def _private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the SendGrid event webhook key must be an EC key")
    return key


def public_key_of(pem: str) -> str:
    """The base64 DER public key, as SendGrid shows it and the API is configured with."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = (
        _private_key(pem).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


def sendgrid_signature(body: bytes, pem: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The two headers of a signed batch."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = _private_key(pem).sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp}


def new_event_id() -> str:
    """Shaped as SendGrid's: 16 random bytes in base64."""
    return base64.b64encode(os.urandom(16)).decode()


def mail_events(payload: Mapping[str, Any], message_id: str, *, now: float) -> list[dict[str, Any]]:
    """The events of one accepted mail (a validated Mail Send body), oldest first."""
    events = []
    stamp = int(now)
    for index, item in enumerate(payload["personalizations"]):
        custom_args = {**(payload.get("custom_args") or {}), **(item.get("custom_args") or {})}
        msg_id = message_id if index == 0 else f"{message_id}.{index}"
        for recipient in item["to"]:
            address = recipient["email"]
            base = {
                **custom_args,
                "email": address,
                "timestamp": stamp,
                "smtp-id": f"<{msg_id}@sandbox.sendgrid.net>",
                "sg_message_id": f"{msg_id}.filter0001.{stamp}.0",
                "category": list(payload.get("categories") or []),
            }
            events.append({**base, "event": "processed", "sg_event_id": new_event_id()})
            if bounces(address):
                events.append({**base, "event": "bounce", "sg_event_id": new_event_id(),
                               "type": "bounce", "status": "5.1.1", "reason": BOUNCE_REASON,
                               "bounce_classification": "Invalid Address"})  # fmt: skip
            else:
                events.append({**base, "event": "delivered", "sg_event_id": new_event_id(),
                               "response": DELIVERED_RESPONSE})  # fmt: skip
    return events
