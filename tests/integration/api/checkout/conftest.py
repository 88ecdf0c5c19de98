"""The checkout's tests: the app wired to one sandbox per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.app import create_app
from tests.support.sandbox import RunningSandbox, running_sandbox, wired_to


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def checkout(aiohttp_client, settings, sandbox, db):
    """A client of the app wired to the sandbox, with ``**overrides`` of its settings."""

    async def make(**overrides):
        wired = wired_to(settings, sandbox).model_copy(update=overrides)
        return await aiohttp_client(create_app(wired))

    return make
