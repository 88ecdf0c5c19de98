"""Alembic environment: online migrations only, with statement and lock timeouts so a
migration never queues behind a long transaction and blocks live traffic."""

from alembic import context
from sqlalchemy import create_engine, pool

from fulfillment.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(
        config.get_main_option("sqlalchemy.url"),
        poolclass=pool.NullPool,
        connect_args={"options": "-c lock_timeout=5000 -c statement_timeout=60000"},
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
