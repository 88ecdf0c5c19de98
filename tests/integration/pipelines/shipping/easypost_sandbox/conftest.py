"""Fixtures of the shipping tests on the EasyPost sandbox: the sandbox (one per module), the
test settings wired to it, and the engine, the real EasyPost gateway, the deps (payments
and mail are in-memory doubles) and the app on those settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from api.app import create_app
from fulfillment.db import create_sync_db_engine, sync_session_factory
from fulfillment.settings import Settings
from integrations.easypost_gateway import EasyPostCarrier, build_easypost_carrier
from integrations.stripe_tax import build_stripe_tax
from pipelines.deps import Deps
from pipelines.mail.notify import send_claimed
from tests.support.fakes import FakeMailer, FakePayments
from tests.support.sandbox import (
    FAST_RETRIES,
    TEST_TIMEOUT,
    RunningSandbox,
    running_sandbox,
    wired_to,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def wired(settings: Settings, sandbox: RunningSandbox) -> Settings:
    """The test settings, with EasyPost (and Stripe, SendGrid) at the sandbox."""
    return wired_to(settings, sandbox)


@pytest.fixture
def engine(db: Engine, wired: Settings) -> Iterator[Engine]:
    engine = create_sync_db_engine(wired, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def carrier(wired: Settings) -> EasyPostCarrier:
    return build_easypost_carrier(wired, timeout=TEST_TIMEOUT * 5, policy=FAST_RETRIES)


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def deps(engine, wired, carrier, mailer) -> Deps:
    return Deps(sessions=sync_session_factory(engine), payments=FakePayments(), mailer=mailer,
                carrier=carrier, settings=wired, send_mail=send_claimed,
                tax=build_stripe_tax(wired))  # fmt: skip


@pytest.fixture
async def client(aiohttp_client, wired: Settings, db):
    return await aiohttp_client(create_app(wired))
