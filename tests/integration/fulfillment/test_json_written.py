"""Both engines write the JSON they store through ``fulfillment.jsonout``: a JSONB column
through the ORM and a ``Jsonb`` parameter on the driver connection (the API's order
batch, the workers' prepared statements) alike."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import JSONB

from fulfillment import db as db_module
from fulfillment import jsonout

VALUE = {"name": "Crème ☕", 7: [1, 2]}


@pytest.fixture
def written(monkeypatch) -> list[object]:
    seen: list[object] = []
    dumps = jsonout.dumps

    def counting(value):
        seen.append(value)
        return dumps(value)

    monkeypatch.setattr(jsonout, "dumps", counting)
    return seen


def test_the_workers_engine_writes_jsonb_through_jsonout(settings, db, written):
    engine = db_module.create_sync_db_engine(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            row = driver.execute("SELECT %s::jsonb", (Jsonb(VALUE),)).fetchone()
            column = conn.execute(select(bindparam("v", {"a": 1}, type_=JSONB))).scalar()
    finally:
        engine.dispose()
    assert row[0] == {"name": "Crème ☕", "7": [1, 2]}
    assert column == {"a": 1}
    assert written == [VALUE, {"a": 1}]


async def test_the_apis_engine_writes_jsonb_through_jsonout(settings, db, written):
    engine = db_module.create_async_db_engine(settings)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            cursor = await raw.driver_connection.execute("SELECT %s::jsonb", (Jsonb(VALUE),))
            row = await cursor.fetchone()
    finally:
        await engine.dispose()
    assert row[0] == {"name": "Crème ☕", "7": [1, 2]}
    assert written == [VALUE]
