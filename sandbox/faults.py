"""Seeded fault injection: one random stream per provider, drawn a fixed number of
times per affected request, so a seed and a request sequence always give the same
faults. Webhook plans and Stripe's pending refunds draw from streams of their own."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.config import PROVIDERS, ProviderFaults, SandboxConfig

#: What injected failures say, by status.
_MESSAGES = {
    429: "Too many requests hit the API too quickly. We recommend an exponential backoff.",
    500: "Sorry, something went wrong on our end. Please try again.",
    503: "The service is temporarily unavailable. Please try again.",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one request."""

    latency: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    hang: float = 0.0


@dataclass(frozen=True, slots=True)
class WebhookPlan:
    """How one webhook event goes out: after ``delay`` seconds, and maybe once more."""

    delay: float = 0.0
    duplicate_delay: float | None = None


class FaultInjector:
    def __init__(self, config: SandboxConfig) -> None:
        self._initial = {provider: config.faults_for(provider) for provider in PROVIDERS}
        self.reset(config.seed)

    def reset(self, seed: int) -> None:
        """Faults back to the start configuration, every stream re-seeded."""
        self.seed = seed
        self.faults: dict[str, ProviderFaults] = dict(self._initial)
        self._requests = {p: random.Random(f"{seed}:{p}:requests") for p in PROVIDERS}
        self._webhooks = {p: random.Random(f"{seed}:{p}:webhooks") for p in PROVIDERS}
        self._refunds = random.Random(f"{seed}:stripe:refunds")

    def reseed(self, seed: int) -> None:
        """New random streams, the faults as they are now."""
        faults = dict(self.faults)
        self.reset(seed)
        self.faults = faults

    def configure(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        """Apply ``{"stripe": {...}, "*": {...}}``; all or nothing, ValueError on bad input."""
        changed = dict(self.faults)
        for name, values in updates.items():
            if name in ("*", "all"):
                targets = PROVIDERS
            elif name in PROVIDERS:
                targets = (name,)
            else:
                raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
            if not isinstance(values, Mapping):
                raise ValueError(f"faults for {name!r} must be an object")
            for provider in targets:
                changed[provider] = ProviderFaults.from_mapping(values, base=changed[provider])
        self.faults = changed

    def clear(self) -> None:
        self.faults = {provider: ProviderFaults() for provider in PROVIDERS}

    def decide(self, provider: str, *, method: str, path: str) -> Decision:
        faults = self.faults[provider]
        if not faults.applies_to(method, path):
            return Decision()
        rng = self._requests[provider]
        jitter, limited, failed, hung = (rng.random() for _ in range(4))
        latency = faults.latency + jitter * faults.latency_jitter
        if faults.fail_next > 0 and faults.fail_after > 0:
            self.faults[provider] = dataclasses.replace(faults, fail_after=faults.fail_after - 1)
        elif faults.fail_next > 0:
            self.faults[provider] = dataclasses.replace(faults, fail_next=faults.fail_next - 1)
            return _error(faults, status=faults.error_status, latency=latency)
        if limited < faults.rate_limit_rate:
            return _error(faults, status=429, latency=latency)
        if failed < faults.error_rate:
            return _error(faults, status=faults.error_status, latency=latency)
        hang = faults.timeout_seconds if hung < faults.timeout_rate else 0.0
        return Decision(latency=latency, hang=hang)

    def webhook_plan(self, provider: str) -> WebhookPlan:
        faults = self.faults[provider]
        rng = self._webhooks[provider]
        delay, held, doubled, second_delay = (rng.random() for _ in range(4))
        first = delay * faults.webhook_delay
        if held < faults.webhook_reorder_rate:
            first += faults.webhook_reorder_hold
        duplicate = None
        if doubled < faults.webhook_duplicate_rate:
            duplicate = second_delay * max(faults.webhook_delay, 0.05)
        return WebhookPlan(delay=first, duplicate_delay=duplicate)

    def refund_pending(self) -> bool:
        """Whether a new Stripe refund is created ``pending``: one draw per refund."""
        return self._refunds.random() < self.faults["stripe"].refund_pending

    def snapshot(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "faults": {provider: faults.to_dict() for provider, faults in self.faults.items()},
        }


def _error(faults: ProviderFaults, *, status: int, latency: float) -> Decision:
    retry_after = faults.retry_after if status == 429 else None
    return Decision(latency=latency, status=status, retry_after=retry_after)


def error_body(provider: str, status: int) -> dict[str, Any]:
    """An injected failure, shaped as the provider shapes its own."""
    message = _MESSAGES.get(status) or _MESSAGES[500 if status >= 500 else 429]
    if status < 500 and status != 429:
        message = "The sandbox refused this request (injected fault)."
    if provider == "stripe":
        kind = "api_error" if status >= 500 else "invalid_request_error"
        code = "rate_limit" if status == 429 else None
        return {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}
    if provider == "sendgrid":
        return {"errors": [{"message": message, "field": None, "help": None}]}
    codes = {429: "RATE_LIMITED", 503: "SERVICE.UNAVAILABLE"}
    code = codes.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST")
    return {"error": {"code": code, "message": message, "errors": []}}
