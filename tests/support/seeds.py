"""Emptying the test database between tests, keeping the rows the migrations seed (the
default location, migration 0016): every table is truncated, then the seeded tables get
back the rows they held when the tests first opened the database."""

from __future__ import annotations

from sqlalchemy import Engine, text

from fulfillment.models import Base

#: Tables the migrations write rows into, which a deployment starts with.
SEEDED = ("locations",)

#: The seeded rows (as a JSON array per table) of each test database, by its URL.
_seeds: dict[str, dict[str, str]] = {}


def _key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def remember_seeds(engine: Engine) -> None:
    """Keep the seeded tables' rows as they are now, once per database: call it before
    the first test can change them."""
    if _key(engine) in _seeds:
        return
    with engine.connect() as conn:
        _seeds[_key(engine)] = {
            table: conn.scalar(
                text(f"SELECT coalesce(jsonb_agg(t), '[]')::text FROM \"{table}\" t")
            )
            for table in SEEDED
        }


def empty_database(engine: Engine) -> None:
    """Every table emptied, then the seeded rows put back as they were first seen."""
    remember_seeds(engine)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for table, rows in _seeds[_key(engine)].items():
            conn.execute(
                text(f'INSERT INTO "{table}" SELECT * FROM '
                     f'jsonb_populate_recordset(NULL::"{table}", CAST(:rows AS jsonb))'),
                {"rows": rows},
            )  # fmt: skip
