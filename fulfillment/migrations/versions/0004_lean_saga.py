"""lean saga: the request id on the order, the tracking code on stored tracker events

Every message about an order carries the id of the request that placed it, whichever
road it takes (a step, the sweeper, a dead-letter replay): the order keeps it. A tracker
event that arrives before its shipment is stored is found again by its tracking code
when the shipment is written; a payment event that arrives while its order's charge is
in flight is found again by its order when the charge commits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("request_id", sa.String(length=128), nullable=True))
    op.add_column(
        "webhook_events", sa.Column("tracking_code", sa.String(length=255), nullable=True)
    )
    op.create_index(
        "ix_webhook_events_waiting_tracker",
        "webhook_events",
        ["tracking_code"],
        postgresql_where=sa.text("processed_at IS NULL AND tracking_code IS NOT NULL"),
    )
    op.create_index(
        "ix_webhook_events_waiting_order",
        "webhook_events",
        ["order_id"],
        postgresql_where=sa.text("processed_at IS NULL AND order_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_waiting_order", table_name="webhook_events")
    op.drop_index("ix_webhook_events_waiting_tracker", table_name="webhook_events")
    op.drop_column("webhook_events", "tracking_code")
    op.drop_column("orders", "request_id")
