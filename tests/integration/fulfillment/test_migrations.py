"""The schema is Alembic's: it goes up and down, and matches the models exactly."""

from __future__ import annotations

import uuid

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, make_url

from fulfillment import migrate
from fulfillment.models import Base
from fulfillment.settings import to_sqlalchemy_url


def test_upgrade_downgrade_upgrade_and_no_drift(server_urls):
    admin = make_url(server_urls[0]).set(database="postgres").render_as_string(hide_password=False)
    name = f"fulfillment_migrations_{uuid.uuid4().hex[:8]}"
    url = make_url(server_urls[0]).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate.upgrade(url)
        migrate.downgrade(url, "base")
        migrate.upgrade(url)
        engine = create_engine(to_sqlalchemy_url(url))
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        engine.dispose()
        assert diff == []
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
