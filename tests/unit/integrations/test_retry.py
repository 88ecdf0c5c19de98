"""In-call retries: which failures are retried, how long the waits are, when it stops.
No I/O: the call is a stub and the sleeps are recorded, not slept."""

from __future__ import annotations

import time

import pytest
import stripe
from prometheus_client import REGISTRY

from integrations.errors import PermanentProviderError, TransientProviderError
from integrations.retry import RetryPolicy, call_provider

POLICY = RetryPolicy(attempts=4, backoff=0.1, max_backoff=1.0, budget=30.0, max_retry_after=5.0)


class Stub:
    """Raises the given outcomes in turn, then returns "ok"."""

    def __init__(self, *outcomes: BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return "ok"


def transient(retry_after: float | None = None) -> TransientProviderError:
    return TransientProviderError(
        "busy", provider="stub", operation="op", http_status=503, retry_after=retry_after
    )


def permanent() -> PermanentProviderError:
    return PermanentProviderError("no", provider="stub", operation="op", http_status=400)


def run(stub: Stub, policy: RetryPolicy = POLICY, *, provider: str = "stub") -> list[float]:
    sleeps: list[float] = []
    call_provider(stub, provider=provider, operation="op", policy=policy, sleep=sleeps.append)
    return sleeps


def count(outcome: str, provider: str = "stub") -> float:
    labels = {"provider": provider, "operation": "op", "outcome": outcome}
    return REGISTRY.get_sample_value("fulfillment_integration_requests_total", labels) or 0.0


def test_transient_failures_are_retried_with_growing_jittered_backoff():
    before = count("success")
    stub = Stub(transient(), transient())

    sleeps = run(stub)

    assert stub.calls == 3
    assert 0.1 <= sleeps[0] <= 0.2 and 0.2 <= sleeps[1] <= 0.3
    assert count("success") == before + 1


def test_a_permanent_failure_surfaces_at_once():
    before = count("permanent_error")
    stub = Stub(permanent())

    with pytest.raises(PermanentProviderError):
        run(stub)

    assert stub.calls == 1
    assert count("permanent_error") == before + 1


def test_transient_failures_surface_once_the_attempts_are_spent():
    before = count("transient_error")
    stub = Stub(*(transient() for _ in range(10)))

    with pytest.raises(TransientProviderError):
        run(stub)

    assert stub.calls == POLICY.attempts
    assert count("transient_error") == before + 1


def test_retry_after_sets_the_wait():
    sleeps = run(Stub(transient(retry_after=2.0)))
    assert sleeps == [2.0]


def test_a_retry_after_longer_than_the_policy_allows_is_left_to_the_long_retry():
    stub = Stub(transient(retry_after=60.0))
    with pytest.raises(TransientProviderError) as raised:
        run(stub)
    assert stub.calls == 1
    assert raised.value.retry_after == 60.0


def test_no_wait_runs_past_the_budget():
    stub = Stub(transient(retry_after=2.0))
    with pytest.raises(TransientProviderError):
        run(stub, RetryPolicy(attempts=5, budget=1.0, max_retry_after=5.0))
    assert stub.calls == 1


def test_sdk_exceptions_are_classified_before_the_retry_decision():
    outage = stripe.APIError("down", None, 503, {"error": {"type": "api_error"}})
    decline = stripe.CardError(
        "declined", None, "card_declined", None, 402, {"error": {"decline_code": "generic_decline"}}
    )
    stub = Stub(outage, decline)

    with pytest.raises(PermanentProviderError) as raised:
        run(stub, provider="stripe")

    assert stub.calls == 2
    assert raised.value.code == "generic_decline"
    assert raised.value.__cause__ is decline


def test_a_bug_is_not_retried_or_disguised():
    before = count("unexpected_error")
    stub = Stub(KeyError("id"))

    with pytest.raises(KeyError):
        run(stub)

    assert stub.calls == 1
    assert count("unexpected_error") == before + 1


def test_every_call_is_timed_once():
    labels = {"provider": "stub", "operation": "op"}
    before = REGISTRY.get_sample_value(
        "fulfillment_integration_request_duration_seconds_count", labels
    )
    run(Stub(transient()))
    after = REGISTRY.get_sample_value(
        "fulfillment_integration_request_duration_seconds_count", labels
    )
    assert after == (before or 0.0) + 1


def test_a_first_try_that_succeeds_needs_no_retry_machinery(monkeypatch):
    def no_tenacity(**_):
        raise AssertionError("tenacity was set up for a call that succeeded at once")

    monkeypatch.setattr("integrations.retry.Retrying", no_tenacity)
    assert run(Stub()) == []
    with pytest.raises(PermanentProviderError):  # nor for one refused at once
        run(Stub(permanent()))


def test_the_budget_counts_the_first_try_too():
    # Given a first try that spends most of the budget before failing
    class Slow(Stub):
        def __call__(self) -> str:
            if self.calls == 0:
                time.sleep(0.45)
            return super().__call__()

    stub = Slow(transient())
    policy = RetryPolicy(attempts=5, backoff=0.1, max_backoff=0.1, budget=0.5)

    # Then no retry starts past the budget: 0.45 s spent and a wait of at least 0.1 s
    with pytest.raises(TransientProviderError):
        run(stub, policy)
    assert stub.calls == 1
