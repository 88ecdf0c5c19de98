"""Fault injection: seeded, so a run can be repeated; set at start or at run time;
shaped as each provider shapes its own failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sandbox import ProviderFaults
from tests.support.sandbox import RunningSandbox, running_sandbox

STRIPE_KEY = {"Authorization": "Bearer sk_test_faults"}
FLAKY = {"error_rate": 0.4, "rate_limit_rate": 0.2}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


def statuses(sandbox: RunningSandbox, count: int = 40) -> list[int]:
    with requests.Session() as http:
        return [
            http.get(f"{sandbox.url}/v1/payment_intents", headers=STRIPE_KEY, timeout=5).status_code
            for _ in range(count)
        ]


def test_the_same_seed_gives_the_same_faults(sandbox):
    # Given a flaky Stripe seeded with 7
    sandbox.reset(seed=7)
    sandbox.set_faults(stripe=FLAKY)

    # When the same requests are made twice from the same seed
    first = statuses(sandbox)
    sandbox.reset(seed=7)
    sandbox.set_faults(stripe=FLAKY)
    second = statuses(sandbox)

    # Then the same requests fail the same way
    assert first == second
    assert {200, 429, 503} == set(first)
    # and a sandbox started fresh with that seed agrees
    with running_sandbox(seed=7, faults={"stripe": ProviderFaults(**FLAKY)}) as fresh:
        assert statuses(fresh) == first
    # while another seed does not
    sandbox.reset(seed=8)
    sandbox.set_faults(stripe=FLAKY)
    assert statuses(sandbox) != first


def test_each_provider_draws_from_its_own_stream(sandbox):
    # Given flaky Stripe and SendGrid from one seed
    sandbox.reset(seed=3)
    sandbox.set_faults(stripe=FLAKY)
    alone = statuses(sandbox, 20)

    # When SendGrid traffic is interleaved
    sandbox.reset(seed=3)
    sandbox.set_faults(stripe=FLAKY)
    mixed = []
    for _ in range(20):
        requests.get(f"{sandbox.url}/sendgrid/v3/messages", timeout=5)
        mixed += statuses(sandbox, 1)

    # Then Stripe's faults are unchanged
    assert mixed == alone


def test_a_rate_limit_looks_like_stripes_and_says_when_to_come_back(sandbox):
    sandbox.reset()
    sandbox.set_faults(stripe={"fail_next": 1, "error_status": 429, "retry_after": 2})
    answer = requests.get(f"{sandbox.url}/v1/payment_intents", headers=STRIPE_KEY, timeout=5)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["error"]["code"] == "rate_limit"


def test_fail_next_can_begin_after_some_requests_went_through(sandbox):
    # Given the second and third Stripe list calls set to fail, and only those
    sandbox.reset()
    sandbox.set_faults(stripe={"fail_next": 2, "fail_after": 1, "error_status": 500})

    # Then one goes through, two fail, and the rest go through again
    codes = [requests.get(f"{sandbox.url}/v1/payment_intents", headers=STRIPE_KEY,
                          timeout=5).status_code for _ in range(5)]  # fmt: skip
    assert codes == [200, 500, 500, 200, 200]


def test_faults_can_target_one_endpoint(sandbox):
    sandbox.reset()
    sandbox.set_faults(easypost={"error_rate": 1.0, "paths": ["POST /easypost/v2/shipments"]})
    listing = requests.get(
        f"{sandbox.url}/easypost/v2/shipments", headers={"Authorization": "Bearer EZTK"}, timeout=5
    )
    creating = requests.post(
        f"{sandbox.url}/easypost/v2/shipments",
        headers={"Authorization": "Bearer EZTK"},
        json={},
        timeout=5,
    )
    assert listing.status_code == 200
    assert creating.status_code == 503
    assert creating.json()["error"]["code"] == "SERVICE.UNAVAILABLE"


def test_reset_brings_back_the_faults_the_sandbox_started_with():
    with running_sandbox(faults={"sendgrid": ProviderFaults(error_rate=1.0)}) as sandbox:
        url = f"{sandbox.url}/sendgrid/v3/messages"
        assert requests.get(url, timeout=5).status_code == 503
        sandbox.clear_faults()
        assert requests.get(url, timeout=5).status_code == 401  # healthy: asks for a key
        sandbox.reset()
        assert requests.get(url, timeout=5).status_code == 503


def test_the_control_api_refuses_what_it_does_not_know(sandbox):
    control = f"{sandbox.url}/_sandbox/faults"
    unknown_fault = requests.post(control, json={"stripe": {"eror_rate": 1}}, timeout=5)
    unknown_provider = requests.post(control, json={"paypal": {"error_rate": 1}}, timeout=5)
    out_of_range = requests.post(control, json={"*": {"error_rate": 2}}, timeout=5)
    assert [unknown_fault.status_code, unknown_provider.status_code, out_of_range.status_code] == [
        400,
        400,
        400,
    ]
    assert "eror_rate" in unknown_fault.json()["error"]
