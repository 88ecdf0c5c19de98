"""outbound webhooks to the merchant: endpoints, events, deliveries and their attempts,
and the timeline trigger that records every milestone

The trigger (``fulfillment.merchant_events.trigger_sql``), on ``order_events`` and
deferred to the commit, writes an event, a delivery per subscribed endpoint and the
outbox row that sends it in the transaction that moved the order, and nothing at all
while no enabled endpoint subscribes to the type.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fulfillment.merchant_events import Milestone, trigger_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The milestones as of this revision (frozen here: a later list comes with a migration
#: of its own that runs ``trigger_sql`` again).
MILESTONES = (
    Milestone("order.created", created=True),
    Milestone("order.authorized", "authorized"),
    Milestone("order.paid", "paid"),
    Milestone("order.shipped", "shipped"),
    Milestone("order.delivered", "delivered"),
    Milestone("order.rejected", "rejected"),
    Milestone("order.cancelled", "cancelled"),
    Milestone("order.refunded", "refunded"),
    Milestone("order.needs_attention", "needs_attention"),
)


def _timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column:
    default = sa.func.now() if now else None
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default,
                     nullable=nullable)  # fmt: skip


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.String(64)), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        _timestamp("previous_secret_expires_at"),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _timestamp("disabled_at"),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _timestamp("failing_since"),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "merchant_events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "sequence", name="uq_merchant_events_order_sequence"),
    )
    op.create_index("ix_merchant_events_created", "merchant_events", ["created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), server_default=sa.func.gen_random_uuid(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _timestamp("next_attempt_at", nullable=False, now=True),
        _timestamp("retry_from", nullable=False, now=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("delivered_at"),
        _timestamp("created_at", nullable=False, now=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'abandoned')",
            name="ck_webhook_deliveries_status",
        ),
        sa.ForeignKeyConstraint(["event_id"], ["merchant_events.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))  # fmt: skip
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at", nullable=False, now=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_attempts_endpoint", "webhook_attempts", ["endpoint_id", "id"])
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])
    for statement in trigger_sql(MILESTONES, batched=False):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS order_events_merchant ON order_events")
    op.execute("DROP FUNCTION IF EXISTS merchant_order_events()")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("merchant_events")
    op.drop_table("webhook_endpoints")
