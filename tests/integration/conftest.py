from __future__ import annotations

import pytest

from api.app import create_app
from fulfillment.settings import Settings


@pytest.fixture
async def client(aiohttp_client, settings: Settings, db):
    """The real app factory over a real socket, on the test database."""
    return await aiohttp_client(create_app(settings))
