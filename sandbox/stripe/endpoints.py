"""Stripe's webhook endpoints and the events sent to them, in memory, as Stripe does it:
an event goes to every enabled endpoint whose ``enabled_events`` holds its type or
``"*"``; an event no endpoint wants is kept (``GET /v1/events``) and sent nowhere.

The sandbox starts with one endpoint, its configured webhook URL subscribed to
``SandboxConfig.stripe_enabled_events`` (the saga's ``SUBSCRIBED_EVENTS`` unless told
otherwise), and comes back to it on reset. Every endpoint's ``secret`` is the sandbox's
one Stripe webhook secret, so whatever endpoint a delivery comes through, the API
verifies it with ``STRIPE_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sandbox.store import Store
from sandbox.stripe.wire import invalid, list_page, no_such
from sandbox.wire import new_id, now_unix, truthy

#: The Stripe API version stamped on events.
API_VERSION = "2025-06-30.basil"
#: The ``enabled_events`` entry that subscribes an endpoint to every event type.
ALL_EVENTS = "*"
#: What a Stripe event type looks like: ``payment_intent.succeeded``.
_EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)+")

#: How the endpoint the sandbox starts with is described.
DEFAULT_DESCRIPTION = "The sandbox's endpoint (SANDBOX_WEBHOOK_URL)"
#: Sends one event to the endpoint URLs that want it.
Send = Callable[[dict[str, Any], Sequence[str]], None]


def event_types(values: Iterable[Any]) -> list[str]:
    """``enabled_events`` as given, checked: ``"*"`` or Stripe event types, at least one.
    ValueError names the first bad entry (``enabled_events[i]``)."""
    types = [str(value) for value in values]
    if not types:
        raise ValueError("Missing required param: enabled_events.")
    for index, kind in enumerate(types):
        if kind != ALL_EVENTS and not _EVENT_TYPE.fullmatch(kind):
            raise ValueError(
                f"Invalid enabled_events[{index}]: must be '*' or a Stripe event type such "
                f"as payment_intent.succeeded, not {kind!r}"
            )
    return types


class WebhookEndpoints:
    def __init__(
        self,
        send: Send,
        *,
        secret: str,
        default_url: str | None,
        default_events: Sequence[str],
        store: Store | None = None,
    ) -> None:
        self._store = store or Store()
        self.endpoints: dict[str, dict[str, Any]] = self._store.load("webhook_endpoint")
        self.events: dict[str, dict[str, Any]] = self._store.load("event")
        self._send = send
        self._secret = secret
        kept = [e for e in self.endpoints.values() if e["description"] == DEFAULT_DESCRIPTION]
        for endpoint in kept:  # the API may listen elsewhere since the last start
            if default_url:
                self.update(endpoint["id"], {"url": default_url})
            else:
                self.delete(endpoint["id"])
        if default_url and not kept:
            params = {"url": default_url, "enabled_events": list(default_events)}
            self.create({**params, "description": DEFAULT_DESCRIPTION})

    # Endpoints ------------------------------------------------------------------------

    def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/webhook_endpoints``; the only answer that shows the ``secret``."""
        if not params.get("url"):
            raise invalid("Missing required param: url.", code="parameter_missing", param="url")
        endpoint = {
            "id": new_id("we"),
            "object": "webhook_endpoint",
            "api_version": params.get("api_version") or None,
            "application": None,
            "created": now_unix(),
            "description": params.get("description") or None,
            "enabled_events": _enabled_events(params.get("enabled_events")),
            "livemode": False,
            "metadata": _metadata({}, params.get("metadata")),
            "status": "enabled",
            "url": _url(params["url"]),
        }
        self.endpoints[endpoint["id"]] = endpoint
        self._store.put("webhook_endpoint", endpoint["id"], endpoint)
        return {**endpoint, "secret": self._secret}

    def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        if endpoint_id not in self.endpoints:
            raise no_such("webhook_endpoint", endpoint_id, param="id")
        return self.endpoints[endpoint_id]

    def list_endpoints(self, query: Mapping[str, str]) -> dict[str, Any]:
        return list_page(list(self.endpoints.values()), query, url="/v1/webhook_endpoints")

    def update(self, endpoint_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/webhook_endpoints/{id}``: url, enabled_events, disabled, description,
        metadata; checked in full before anything changes."""
        endpoint = self.endpoint(endpoint_id)
        changes: dict[str, Any] = {}
        if "url" in params:
            changes["url"] = _url(params["url"])
        if "enabled_events" in params:
            changes["enabled_events"] = _enabled_events(params["enabled_events"])
        if "disabled" in params:
            changes["status"] = "disabled" if truthy(params["disabled"]) else "enabled"
        if "description" in params:
            changes["description"] = params["description"] or None
        if "metadata" in params:
            changes["metadata"] = _metadata(endpoint["metadata"], params["metadata"])
        endpoint.update(changes)
        self._store.put("webhook_endpoint", endpoint_id, endpoint)
        return endpoint

    def delete(self, endpoint_id: str) -> dict[str, Any]:
        self.endpoint(endpoint_id)
        del self.endpoints[endpoint_id]
        self._store.delete("webhook_endpoint", endpoint_id)
        return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    # Events ---------------------------------------------------------------------------

    def publish(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Record an event about ``obj`` as it is now and send it to the endpoints that
        want it (``pending_webhooks`` says how many)."""
        targets = [
            endpoint["url"]
            for endpoint in self.endpoints.values()
            if endpoint["status"] == "enabled" and _wants(endpoint["enabled_events"], kind)
        ]
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now_unix(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": len(targets),
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        self.events[event["id"]] = event
        self._store.put("event", event["id"], event)
        self._send(event, targets)
        return event

    def event(self, event_id: str) -> dict[str, Any]:
        if event_id not in self.events:
            raise no_such("event", event_id, param="id")
        return self.events[event_id]

    def list_events(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /v1/events``, narrowed by ``type`` (``payment_intent.*`` allowed) or
        ``types[]``."""
        found = list(self.events.values())
        if query.get("type"):
            wanted = str(query["type"])
            found = [event for event in found if _wants((wanted,), event["type"])]
        if query.get("types"):
            kinds = set(query["types"])
            found = [event for event in found if event["type"] in kinds]
        return list_page(found, query, url="/v1/events")


def _wants(enabled: Iterable[str], kind: str) -> bool:
    """Whether a subscription list (or a ``type`` filter) covers the event type ``kind``."""
    return any(
        entry in (ALL_EVENTS, kind) or (entry.endswith(".*") and kind.startswith(entry[:-1]))
        for entry in enabled
    )


def _enabled_events(raw: Any) -> list[str]:
    values = [raw] if isinstance(raw, str) else list(raw or [])
    try:
        return event_types(values)
    except ValueError as exc:
        code = "parameter_missing" if not values else None
        raise invalid(str(exc), code=code, param="enabled_events") from None


def _url(raw: Any) -> str:
    url = str(raw or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(
            f"Invalid URL: {url!r}; it needs a scheme (http or https) and a host.",
            param="url",
        )
    return url


def _metadata(current: Mapping[str, Any], raw: Any) -> dict[str, Any]:
    """Stripe's metadata update: keys merged, a key set to "" removed, "" clears all."""
    if raw in (None, ""):
        return {} if raw == "" else dict(current)
    if not isinstance(raw, Mapping):
        raise invalid("Invalid metadata: must be an object.", param="metadata")
    merged = {**current, **raw}
    return {key: value for key, value in merged.items() if value != ""}
