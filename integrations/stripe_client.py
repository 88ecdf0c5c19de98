"""One ``stripe.StripeClient`` per gateway (payments, Stripe Tax), built one way: the key
and base URL from Settings (the sandbox or Stripe), the SDK's own retries off
(``retry.call_provider`` owns them), a timeout per request, and one pooled session shared
by every thread (``integrations.sdk_http``)."""

from __future__ import annotations

from typing import Any

import stripe

from fulfillment.settings import Settings
from integrations.sdk_http import sdk_session


def stripe_client(settings: Settings, *, timeout: float) -> stripe.StripeClient:
    base_addresses = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses=base_addresses,
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout, session=sdk_session()),
    )


def plain(obj: Any) -> dict[str, Any]:
    """SDK objects are not dicts (stripe >= 15); read them as plain data."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
