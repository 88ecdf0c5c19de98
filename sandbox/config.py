"""What the sandbox is started with: secrets, where webhooks go, the seed, and the
faults each provider injects. Faults can be changed at run time (``/_sandbox/faults``);
``/_sandbox/reset`` brings them back to what the sandbox was started with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fulfillment.settings import (
    SANDBOX_EASYPOST_WEBHOOK_SECRET,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    Settings,
)
from integrations.stripe_events import SUBSCRIBED_EVENTS
from sandbox.sendgrid.events import SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY

#: The providers the sandbox stands in for, each with its own faults and random stream.
PROVIDERS = ("stripe", "sendgrid", "easypost")
#: Where the API takes each provider's webhooks, under ``webhook_url``.
STRIPE_WEBHOOK_PATH = "/v1/webhooks/stripe"
EASYPOST_WEBHOOK_PATH = "/v1/webhooks/easypost"
SENDGRID_WEBHOOK_PATH = "/v1/webhooks/sendgrid"
#: What one usually sees of Stripe's search lag (it promises under a minute).
SEARCH_LAG_SECONDS = 5.0
#: Sandbox seconds before a Stripe refund under way settles (a pending one succeeds, one
#: on ``pm_card_refundFail`` fails), unless the control API settles it first.
REFUND_SETTLE_SECONDS = 5.0
#: Fault fields that are shares of requests (0..1).
RATE_FIELDS = frozenset(
    {
        "error_rate",
        "rate_limit_rate",
        "timeout_rate",
        "webhook_duplicate_rate",
        "webhook_reorder_rate",
        "refund_pending",
    }
)


@dataclass(frozen=True, slots=True)
class ProviderFaults:
    """Faults for one provider. Shares are drawn from the seeded random stream, so the
    same seed and the same requests give the same faults."""

    #: Seconds added to every answer, and up to this many more drawn per request.
    latency: float = 0.0
    latency_jitter: float = 0.0
    #: Share of requests answered ``error_status`` before they are processed.
    error_rate: float = 0.0
    error_status: int = 503
    #: Share of requests answered 429 with ``Retry-After: retry_after``.
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    #: Share of requests processed but answered only after ``timeout_seconds``: the
    #: effect happens, the answer is lost to a client with a shorter timeout.
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    #: The next N requests answered ``error_status``, exactly (a storm on demand).
    fail_next: int = 0
    #: How many requests still go through before ``fail_next`` begins (a failure in the
    #: middle of a sequence: the second of two labels).
    fail_after: int = 0
    #: Only requests whose "METHOD /path" starts with one of these get faults (for
    #: example "POST /v1/payment_intents"; a trailing "$" asks for the exact path);
    #: empty means all of them.
    paths: tuple[str, ...] = ()
    #: Webhooks: share sent twice, random delay up to this many seconds, and share held
    #: back ``webhook_reorder_hold`` seconds so that later events overtake them.
    webhook_duplicate_rate: float = 0.0
    webhook_delay: float = 0.0
    webhook_reorder_rate: float = 0.0
    webhook_reorder_hold: float = 1.0
    #: Seconds, on the sandbox clock, before a new object shows in a search (Stripe's
    #: ``/v1/payment_intents/search``): Stripe's search is not read-after-write ("data is
    #: searchable in under 1 minute"). Not a fault but how the service is; 0 makes a new
    #: object searchable at once (a test that needs it says why).
    search_lag: float = SEARCH_LAG_SECONDS
    #: Stripe: share of new refunds created ``pending`` (``pending_reason: processing``)
    #: instead of ``succeeded``; each succeeds ``refund_settle_after`` seconds later on
    #: the sandbox clock (or as ``POST /_sandbox/stripe/refunds/{id}/settle`` says).
    refund_pending: float = 0.0
    refund_settle_after: float = REFUND_SETTLE_SECONDS
    #: Stripe: seconds, on the sandbox clock, before a refund on ``pm_card_refundFail``
    #: turns ``failed`` (``refund.failed``). Not a fault but how that test card is.
    refund_fail_after: float = REFUND_SETTLE_SECONDS

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, base: ProviderFaults | None = None
    ) -> ProviderFaults:
        """``base`` with ``values`` applied; ValueError names a bad field."""
        base = base or cls()
        known = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            changes[name] = _coerce(name, raw, current=getattr(base, name))
        return dataclasses.replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["paths"] = list(self.paths)
        return data

    def applies_to(self, method: str, path: str) -> bool:
        target = f"{method.upper()} {path}"
        return not self.paths or any(
            target == prefix[:-1] if prefix.endswith("$") else target.startswith(prefix)
            for prefix in self.paths
        )


def _coerce(name: str, raw: Any, *, current: Any) -> Any:
    try:
        if isinstance(current, tuple):
            items = [raw] if isinstance(raw, str) else list(raw)
            return tuple(str(item) for item in items)
        value = type(current)(raw)
    except (TypeError, ValueError):
        raise ValueError(f"fault {name!r} must be a {type(current).__name__}") from None
    if value < 0 or (name in RATE_FIELDS and value > 1):
        raise ValueError(f"fault {name!r} out of range: {raw!r}")
    if name == "error_status" and not 400 <= value <= 599:
        raise ValueError("fault 'error_status' must be an HTTP error status")
    return value


def local_api_url(settings: Settings) -> str:
    """The API this machine runs (API_HOST/API_PORT), as a client reaches it."""
    host = settings.api_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    #: Base URL of the API that receives webhooks; None keeps them in the log only.
    webhook_url: str | None = None
    stripe_webhook_path: str = STRIPE_WEBHOOK_PATH
    easypost_webhook_path: str = EASYPOST_WEBHOOK_PATH
    stripe_webhook_secret: str = SANDBOX_STRIPE_WEBHOOK_SECRET
    #: What the sandbox's own Stripe endpoint (``webhook_url``) subscribes to, as a
    #: Stripe endpoint's ``enabled_events``: the saga's types, or ``("*",)`` for all.
    stripe_enabled_events: tuple[str, ...] = SUBSCRIBED_EVENTS
    #: Seconds a card authorization (``capture_method=manual``) can be captured, on the
    #: sandbox clock: Stripe's 7 days for online card payments. After it the PaymentIntent
    #: is cancelled (``charge.expired``, ``payment_intent.canceled``).
    stripe_authorization_seconds: float = 7 * 24 * 3600
    easypost_webhook_secret: str = SANDBOX_EASYPOST_WEBHOOK_SECRET
    sendgrid_webhook_path: str = SENDGRID_WEBHOOK_PATH
    #: Signs SendGrid's event batches (PEM); its public half is the API's
    #: ``SENDGRID_WEBHOOK_PUBLIC_KEY`` in development.
    sendgrid_webhook_private_key: str = SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY
    #: SendGrid's events leave in batches, one every this many seconds.
    sendgrid_batch_seconds: float = 1.0
    #: Seeds every random stream: fault draws and webhook delays repeat run to run.
    seed: int = 0
    faults: Mapping[str, ProviderFaults] = field(default_factory=dict)
    #: Seconds between tracker statuses (pre_transit → … → delivered); 0 stops the
    #: clock, and trackers then move only through the control API.
    tracker_step_seconds: float = 15.0
    #: Webhook delivery: tries per event, the first retry's backoff (doubling), and
    #: each try's timeout.
    webhook_attempts: int = 6
    webhook_retry_seconds: float = 0.5
    webhook_timeout: float = 5.0
    #: The SQLite file that keeps what the sandbox holds across restarts; None keeps it
    #: in memory only.
    state_path: str | None = None
    #: SendGrid starts with the repository's e-mail templates (``integrations/templates``)
    #: installed, as if ``fulfillment templates sync`` had run; False starts with none.
    install_templates: bool = True

    def faults_for(self, provider: str) -> ProviderFaults:
        return self.faults.get(provider, ProviderFaults())

    def stripe_webhook_target(self) -> str | None:
        return self.webhook_url + self.stripe_webhook_path if self.webhook_url else None

    def easypost_webhook_target(self) -> str | None:
        return self.webhook_url + self.easypost_webhook_path if self.webhook_url else None

    def sendgrid_webhook_target(self) -> str | None:
        return self.webhook_url + self.sendgrid_webhook_path if self.webhook_url else None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SandboxConfig:
        """Secrets from Settings, so the API verifies what the sandbox signs; webhooks to
        ``SANDBOX_WEBHOOK_URL``, else the local API."""
        values: dict[str, Any] = {
            "webhook_url": settings.sandbox_webhook_url or local_api_url(settings),
            "stripe_webhook_secret": settings.stripe_webhook_secret.get_secret_value(),
            "easypost_webhook_secret": settings.easypost_webhook_secret.get_secret_value(),
        }
        values.update(overrides)
        if values.get("webhook_url"):
            values["webhook_url"] = str(values["webhook_url"]).rstrip("/")
        return cls(**values)
