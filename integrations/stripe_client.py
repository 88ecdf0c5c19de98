"""One ``stripe.StripeClient`` per gateway (payments, Stripe Tax), built one way: the key
and base URL from Settings (the sandbox or Stripe), the SDK's own retries off
(``retry.call_provider`` owns them), a timeout per request, and each thread's session
settled on its environment once (``integrations.requests_env``)."""

from __future__ import annotations

from typing import Any

import requests
import stripe

from fulfillment.settings import Settings
from integrations.requests_env import settle_environment


class SettledRequestsClient(stripe.RequestsClient):
    """Stripe's requests client, each thread's session (the SDK keeps one per thread)
    made here and settled on the environment. Stripe passes its own CA bundle on every
    request, so only the proxy and netrc lookups change: they are made once."""

    def _request_internal(self, *args: Any, **kwargs: Any) -> Any:
        local = getattr(self, "_thread_local", None)
        if local is not None and getattr(local, "session", None) is None and not self._session:
            session = requests.Session()
            settle_environment(session)
            local.session = session
        return super()._request_internal(*args, **kwargs)


def stripe_client(settings: Settings, *, timeout: float) -> stripe.StripeClient:
    base_addresses = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses=base_addresses,
        max_network_retries=0,
        http_client=SettledRequestsClient(timeout=timeout),
    )


def plain(obj: Any) -> dict[str, Any]:
    """SDK objects are not dicts (stripe >= 15); read them as plain data."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
