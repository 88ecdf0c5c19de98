"""pipelines: the stock ledger, fulfilment and shipment records, notifications,
webhook events, and the order columns the saga keeps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event"),
    )
    op.create_index(
        "ix_webhook_events_unprocessed",
        "webhook_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.create_table(
        "fulfillments",
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column("parcel_weight_oz", sa.Integer(), nullable=False),
        sa.Column(
            "picked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "packed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')", name="ck_notifications_status"
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
    )
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "shipments",
        sa.Column("order_id", sa.UUID(), nullable=False),
        sa.Column("shipment_id", sa.String(length=255), nullable=False),
        sa.Column("tracking_code", sa.String(length=255), nullable=False),
        sa.Column("tracker_id", sa.String(length=255), nullable=True),
        sa.Column("label_url", sa.Text(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("tracker_status", sa.String(length=32), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("order_id"),
        sa.UniqueConstraint("shipment_id"),
    )
    op.create_index(
        op.f("ix_shipments_tracking_code"), "shipments", ["tracking_code"], unique=False
    )
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("product_id", sa.UUID(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stock_movements_product", "stock_movements", ["product_id"], unique=False)
    op.create_index(
        "uq_stock_movements_order",
        "stock_movements",
        ["order_id", "product_id", "reason"],
        unique=True,
        postgresql_where=sa.text("order_id IS NOT NULL"),
    )
    op.add_column(
        "orders",
        sa.Column("stock_state", sa.String(length=16), server_default="none", nullable=False),
    )
    op.add_column("orders", sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("payment_intent_id", sa.String(length=255), nullable=True))
    op.add_column(
        "orders",
        sa.Column("refund_due", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("orders", sa.Column("refund_id", sa.String(length=255), nullable=True))
    op.add_column("orders", sa.Column("attention_from", sa.String(length=32), nullable=True))
    op.add_column("orders", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_orders_refund_due",
        "orders",
        ["id"],
        unique=False,
        postgresql_where=sa.text("refund_due"),
    )
    op.create_check_constraint(
        "ck_orders_stock_state",
        "orders",
        "stock_state IN ('none', 'reserved', 'released', 'consumed')",
    )
    # Every commit that adds outbox rows wakes the relay (NOTIFY is delivered at commit
    # and coalesced per transaction), so delivery does not wait for the next sweep.
    op.execute(
        """
        CREATE FUNCTION fulfillment_outbox_notify() RETURNS trigger
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
    # The ledger starts from the stock counted so far.
    op.execute(
        "INSERT INTO stock_movements (product_id, delta, reason) "
        "SELECT product_id, on_hand, 'count' FROM inventory WHERE on_hand <> 0"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS fulfillment_outbox_notify()")
    op.drop_constraint("ck_orders_stock_state", "orders", type_="check")
    op.drop_index(
        "ix_orders_refund_due", table_name="orders", postgresql_where=sa.text("refund_due")
    )
    op.drop_column("orders", "delivered_at")
    op.drop_column("orders", "shipped_at")
    op.drop_column("orders", "paid_at")
    op.drop_column("orders", "swept_at")
    op.drop_column("orders", "last_error")
    op.drop_column("orders", "attention_from")
    op.drop_column("orders", "refund_id")
    op.drop_column("orders", "refund_due")
    op.drop_column("orders", "payment_intent_id")
    op.drop_column("orders", "reserved_until")
    op.drop_column("orders", "stock_state")
    op.drop_index(
        "uq_stock_movements_order",
        table_name="stock_movements",
        postgresql_where=sa.text("order_id IS NOT NULL"),
    )
    op.drop_index("ix_stock_movements_product", table_name="stock_movements")
    op.drop_table("stock_movements")
    op.drop_index(op.f("ix_shipments_tracking_code"), table_name="shipments")
    op.drop_table("shipments")
    op.drop_index(
        "ix_notifications_pending",
        table_name="notifications",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("notifications")
    op.drop_table("fulfillments")
    op.drop_index(
        "ix_webhook_events_unprocessed",
        table_name="webhook_events",
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.drop_table("webhook_events")
