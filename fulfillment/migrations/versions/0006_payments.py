"""payments as merchants run them: authorize at order, capture at shipment, 3-D Secure,
voids and partial refunds

The order keeps what Stripe holds of its payment (authorized, captured and refunded
amounts, the capture deadline, whether a capture is due, what the customer must do to
authenticate); every refund is a row of its own with its own idempotency key. Two new
order states: ``requires_action`` (the card needs the customer) and ``authorized``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: The order states before and after this revision.
BEFORE = (
    "pending",
    "reserved",
    "payment_pending",
    "paid",
    "fulfilling",
    "shipped",
    "in_transit",
    "delivered",
    "rejected",
    "cancelled",
    "refunded",
    "needs_attention",
)
AFTER = (*BEFORE, "requires_action", "authorized")


def _status_check(states: tuple[str, ...]) -> None:
    op.drop_constraint("ck_orders_status", "orders", type_="check")
    listed = ", ".join(f"'{state}'" for state in states)
    op.create_check_constraint("ck_orders_status", "orders", f"status IN ({listed})")


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    _status_check(AFTER)
    add = op.add_column
    add("orders", sa.Column("capture_method", sa.String(16), nullable=True))
    add("orders", sa.Column("payment_status", sa.String(24), nullable=True))
    for name in ("amount_authorized", "amount_captured", "amount_refunded"):
        add("orders", sa.Column(name, sa.BigInteger(), server_default="0", nullable=False))
    add("orders", sa.Column("capture_before", sa.DateTime(timezone=True), nullable=True))
    add(
        "orders",
        sa.Column("capture_due", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    add("orders", sa.Column("payment_client_secret", sa.Text(), nullable=True))
    add("orders", sa.Column("payment_next_action", postgresql.JSONB(), nullable=True))
    op.create_check_constraint(
        "ck_orders_captured", "orders", "amount_captured <= amount_authorized"
    )
    op.create_check_constraint("ck_orders_refunded", "orders", "amount_refunded <= amount_captured")
    op.create_index(
        "ix_orders_capture_due", "orders", ["id"], postgresql_where=sa.text("capture_due")
    )
    op.create_index(
        "ix_orders_uncaptured",
        "orders",
        ["capture_before"],
        postgresql_where=sa.text(
            "capture_method = 'manual' AND amount_captured = 0 AND capture_before IS NOT NULL"
        ),
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column(
            "lines", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("request_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("provider_refund_id", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount"),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name="ck_refunds_status"
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "request_key", name="uq_refunds_order_request_key"),
    )
    op.create_index("ix_refunds_order_id", "refunds", ["order_id"])
    op.create_index(
        "ix_refunds_pending", "refunds", ["id"], postgresql_where=sa.text("status = 'pending'")
    )


def downgrade() -> None:
    op.drop_table("refunds")
    op.drop_index("ix_orders_uncaptured", table_name="orders")
    op.drop_index("ix_orders_capture_due", table_name="orders")
    op.drop_constraint("ck_orders_refunded", "orders", type_="check")
    op.drop_constraint("ck_orders_captured", "orders", type_="check")
    for name in (
        "payment_next_action",
        "payment_client_secret",
        "capture_due",
        "capture_before",
        "amount_refunded",
        "amount_captured",
        "amount_authorized",
        "payment_status",
        "capture_method",
    ):
        op.drop_column("orders", name)
    op.execute("UPDATE orders SET status = 'payment_pending' WHERE status = 'requires_action'")
    op.execute("UPDATE orders SET status = 'paid' WHERE status = 'authorized'")
    _status_check(BEFORE)
