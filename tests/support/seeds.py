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
    """Every table emptied, then the seeded rows put back as they were first seen: as
    one ``TRUNCATE`` of every table ``RESTART IDENTITY`` would leave them, but only the
    tables that hold rows (a seeded table: other rows than its seeds) are truncated,
    and only the identities that moved are restarted. Truncating a table makes new
    files for it and each of its indexes, whether it held rows or not: the whole
    schema took about 70 ms per test, most tests write a few tables."""
    remember_seeds(engine)
    seeds = _seeds[_key(engine)]
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        held = conn.execute(text(_holding(tables, seeds)), seeds).scalars().all()
        if held:
            listed = ", ".join(f'"{name}"' for name in held)
            conn.execute(text(f"TRUNCATE {listed} RESTART IDENTITY CASCADE"))
        for sequence in conn.execute(text(_MOVED_IDENTITIES), {"tables": tables}).scalars():
            conn.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))
        for table in seeds:
            conn.execute(
                text(f'INSERT INTO "{table}" SELECT * FROM '
                     f'jsonb_populate_recordset(NULL::"{table}", CAST(:{table} AS jsonb)) '
                     f'WHERE NOT EXISTS (SELECT 1 FROM "{table}")'),
                seeds,
            )  # fmt: skip


def _holding(tables: list[str], seeds: dict[str, str]) -> str:
    """The tables holding rows, a seeded one only when it holds other rows than its
    seeds (as the same JSON text, in the same order, as ``remember_seeds`` read)."""
    return " UNION ALL ".join(
        f"SELECT '{name}' WHERE (SELECT coalesce(jsonb_agg(t), '[]')::text FROM \"{name}\" t)"
        f" IS DISTINCT FROM :{name}"
        if name in seeds
        else f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")"
        for name in tables
    )


#: The sequences behind the tables' serial and identity columns that have handed out a
#: value since they last (re)started: ``TRUNCATE ... RESTART IDENTITY`` would restart
#: them, the tables' own or not (``pg_sequences.last_value`` is null until then).
_MOVED_IDENTITIES = """
    SELECT format('%I.%I', q.schemaname, q.sequencename)
    FROM pg_sequences q
    JOIN pg_class s ON s.relname = q.sequencename
    JOIN pg_namespace n ON n.oid = s.relnamespace AND n.nspname = q.schemaname
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
         AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    WHERE q.last_value IS NOT NULL AND t.relname = ANY(:tables)
"""
