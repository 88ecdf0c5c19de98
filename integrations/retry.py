"""Short in-call retries for provider calls, and the two integration metrics.

``call_provider`` runs one SDK call: transient failures are retried a few times with
exponential backoff and jitter (tenacity), honouring ``Retry-After``, inside a hard
budget; then they surface as ``TransientProviderError`` for Dramatiq's long retries.
Permanent failures surface at once. Every call - retries included - is counted once in
``fulfillment_integration_requests_total`` and timed in
``fulfillment_integration_request_duration_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from integrations.errors import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    classify,
)
from monitoring.metrics import integration_request_duration_seconds, integration_requests_total

T = TypeVar("T")

#: Outcome label values of ``fulfillment_integration_requests_total``.
OUTCOMES = ("success", "transient_error", "permanent_error", "unexpected_error")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long one provider call may keep trying before giving up for now."""

    #: Tries in all, the first included.
    attempts: int = 3
    #: The first backoff; it doubles per retry, plus up to as much again of jitter.
    backoff: float = 0.25
    #: No single backoff is longer than this.
    max_backoff: float = 2.0
    #: No retry starts (and no wait runs) past this many seconds after the first try.
    budget: float = 10.0
    #: A ``Retry-After`` longer than this is not waited out in-call: the error surfaces
    #: and the long retry (Dramatiq) takes it from there.
    max_retry_after: float = 5.0
    #: Whether a timeout - after which the provider may or may not have acted - is
    #: retried. Safe where the call carries an idempotency key (Stripe, EasyPost's
    #: reference lookup); not for mail, which SendGrid would send twice.
    retry_ambiguous: bool = True


#: The policy the gateways use unless told otherwise.
DEFAULT_POLICY = RetryPolicy()


class _wait_backoff_or_retry_after(wait_base):
    """Exponential backoff with jitter, but never shorter than the provider's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff, max=policy.max_backoff, jitter=policy.backoff
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        retry_after = _retry_after(retry_state)
        return backoff if retry_after is None else max(backoff, retry_after)


class _stop_when_retry_after_too_long(stop_base):
    def __init__(self, limit: float) -> None:
        self._limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _retry_after(retry_state)
        return retry_after is not None and retry_after > self._limit


def call_provider(
    fn: Callable[[], T],
    *,
    provider: str,
    operation: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn`` (one SDK call) with classification, retries and metrics. The first
    try runs on its own: only a transient failure brings in tenacity, which decides
    from that failure on exactly as if it had made the first try itself (its stops and
    waits, the budget counted from the first try). Building tenacity's objects for
    every call cost about 40 µs a call, most calls succeeding at once."""
    started = time.perf_counter()
    outcome = "unexpected_error"
    try:
        try:
            result = _classified(fn, provider=provider, operation=operation)
        except TransientProviderError as failed:
            result = _retrying(policy, sleep, started)(
                _after(failed, fn), provider=provider, operation=operation
            )
        outcome = "success"
        return result
    except TransientProviderError:
        outcome = "transient_error"
        raise
    except PermanentProviderError:
        outcome = "permanent_error"
        raise
    finally:
        integration_requests_total.labels(provider, operation, outcome).inc()
        integration_request_duration_seconds.labels(provider, operation).observe(
            time.perf_counter() - started
        )


def _after(failed: TransientProviderError, fn: Callable[[], T]) -> Callable[..., T]:
    """Tenacity's attempts: the first raises the failure the first try met (so the
    retry decisions start from it), the next ones call ``fn`` again."""
    replayed = False

    def attempt(*, provider: str, operation: str) -> T:
        nonlocal replayed
        if not replayed:
            replayed = True
            raise failed
        return _classified(fn, provider=provider, operation=operation)

    return attempt


class _stop_past_budget(stop_base):
    """``stop_before_delay``, counted from the first try (``started``, perf_counter),
    which ran before tenacity's clock started."""

    def __init__(self, budget: float, started: float) -> None:
        self._budget = budget
        self._started = started

    def __call__(self, retry_state: RetryCallState) -> bool:
        spent = time.perf_counter() - self._started
        return spent + retry_state.upcoming_sleep >= self._budget


def _retrying(policy: RetryPolicy, sleep: Callable[[float], None], started: float) -> Retrying:
    return Retrying(
        retry=retry_if_exception(lambda exc: _worth_retrying(exc, policy)),
        wait=_wait_backoff_or_retry_after(policy),
        stop=(
            stop_after_attempt(policy.attempts)
            | _stop_past_budget(policy.budget, started)
            | _stop_when_retry_after_too_long(policy.max_retry_after)
        ),
        sleep=sleep,
        reraise=True,
    )


def _worth_retrying(exc: BaseException, policy: RetryPolicy) -> bool:
    if not isinstance(exc, TransientProviderError):
        return False
    return policy.retry_ambiguous or not is_ambiguous(exc)


def is_ambiguous(exc: BaseException) -> bool:
    """A timeout: the provider may have acted before the answer was lost."""
    return isinstance(exc, TransientProviderError) and exc.code == "timeout"


def _classified(fn: Callable[[], T], *, provider: str, operation: str) -> T:
    try:
        return fn()
    except ProviderError:
        raise
    except Exception as exc:
        classified = classify(exc, provider=provider, operation=operation)
        if classified is None:
            raise
        raise classified from exc


def _retry_after(retry_state: RetryCallState) -> float | None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None and outcome.failed else None
    return exc.retry_after if isinstance(exc, ProviderError) else None
