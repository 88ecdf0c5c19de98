"""Fixtures of the integration tests: the real app over a socket, and the step tests'
world (an engine with room for concurrent steps, the in-memory providers of
``tests.support.fakes`` and the deps a worker hands the steps)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from api.app import create_app
from fulfillment.db import create_sync_db_engine
from fulfillment.settings import Settings
from pipelines.deps import Deps
from tests.support.fakes import FakeCarrier, FakeMailer, FakePayments
from tests.support.steps import make_deps


@pytest.fixture
async def client(aiohttp_client, settings: Settings, db):
    """The real app factory over a real socket, on the test database."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def engine(db: Engine, settings: Settings) -> Iterator[Engine]:
    """An engine with room for 8 concurrent steps (``db`` empties the tables after)."""
    engine = create_sync_db_engine(settings, pool_size=10)
    yield engine
    engine.dispose()


@pytest.fixture
def payments() -> FakePayments:
    return FakePayments()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def carrier() -> FakeCarrier:
    return FakeCarrier()


@pytest.fixture
def deps(engine, settings, payments, mailer, carrier) -> Deps:
    """The step tests pin the saga's mechanics with the card captured at order
    (``PAYMENT_CAPTURE=order``); ``pipelines/payments/test_capture.py`` and its
    neighbours pin capture at shipment."""
    at_order = settings.model_copy(update={"payment_capture": "order"})
    return make_deps(engine, at_order, payments, mailer, carrier)
