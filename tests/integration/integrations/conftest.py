"""Fixtures of the Stripe gateway's tests (``test_gateway_stripe.py``,
``test_gateway_stripe_capture.py``): a sandbox per module, emptied for each test, and the
gateway on it. The other gateways' modules define their own sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.stripe_gateway import StripeGateway, build_stripe_gateway
from tests.support.sandbox import FAST_RETRIES, TEST_TIMEOUT, RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def gateway(sandbox: RunningSandbox) -> StripeGateway:
    sandbox.reset()
    return build_stripe_gateway(sandbox.settings(), timeout=TEST_TIMEOUT, policy=FAST_RETRIES)
