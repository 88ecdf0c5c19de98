"""The test database emptied between tests (``tests.support.seeds.empty_database``): as
a ``TRUNCATE`` of every table ``RESTART IDENTITY`` would leave it, the migrations'
seeds put back, whichever tables a test wrote."""

from __future__ import annotations

from sqlalchemy import text

from fulfillment.models import Base
from tests.support.seeds import empty_database

OUTBOX = ("INSERT INTO outbox (queue_name, actor_name, kwargs) "
          "VALUES ('q', 'a', '{}'::jsonb) RETURNING id")  # fmt: skip


def contents(engine) -> dict[str, list]:
    with engine.connect() as conn:
        return {t.name: conn.execute(text(f'SELECT * FROM "{t.name}" ORDER BY 1')).all()
                for t in Base.metadata.sorted_tables}  # fmt: skip


def test_written_tables_are_emptied_seeds_restored_and_identities_restarted(db):
    # Given the database as the migrations leave it: the default location, nothing else
    first = contents(db)
    assert len(first["locations"]) == 1 and not any(
        rows for name, rows in first.items() if name != "locations")  # fmt: skip
    # When a test writes rows, renames the seeded location, adds another, and moves the
    # identity of a table it leaves empty
    with db.begin() as conn:
        conn.execute(text(OUTBOX))
        conn.execute(text("UPDATE locations SET name = 'renamed'"))
        conn.execute(text("INSERT INTO locations (id, name, address, is_default) VALUES "
                          "(gen_random_uuid(), 'second', '{}'::jsonb, false)"))  # fmt: skip
        conn.execute(text("INSERT INTO users (id, email, password_hash, first_name, last_name)"
                          " VALUES (gen_random_uuid(), 'a@example.com', 'x', 'A', 'B')"))  # fmt: skip
        conn.execute(text("INSERT INTO order_events (order_id, step, to_status) "
                          "SELECT gen_random_uuid(), 's', 'pending' WHERE false"))  # fmt: skip
        conn.execute(text("SELECT nextval(pg_get_serial_sequence('webhook_events', 'id'))"))
    empty_database(db)

    # Then every table is as it first was, the seeded row as it was seeded
    assert contents(db) == first
    # and identities start again, written or not
    with db.begin() as conn:
        assert conn.execute(text(OUTBOX)).scalar() == 1
        assert (
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence('webhook_events', 'id'))")
            ).scalar()
            == 1
        )
    # and a database already empty stays as it is
    empty_database(db)
    assert contents(db) == first
