"""the outbox trigger notifies only when a statement inserted rows

The trigger ran once per statement that named the outbox, inserted rows or not: the
statements that store a webhook and may queue its message in one CTE (tracker and Stripe
events) fired a NOTIFY on every event, three a delivered order. Every NOTIFY wakes every
backend listening in the database (the relay's and the API's account listener): each
wake is a transaction of that backend, 2.3 NOTIFYs and about 4 commits an order for
nothing (measured on ``make bench``). The trigger now reads its transition table.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION fulfillment_outbox_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM inserted) THEN
                PERFORM pg_notify('fulfillment_outbox', '');
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted "
        "FOR EACH STATEMENT EXECUTE FUNCTION fulfillment_outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION fulfillment_outbox_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('fulfillment_outbox', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION fulfillment_outbox_notify()"
    )
