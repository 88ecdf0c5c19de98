"""returns: the ``returns`` table, and stock movements that name their return

A customer returns some of a delivered order's units: each return is a row that only
moves forward (requested -> label_created -> in_transit -> received -> refunded, or
cancelled), with its EasyPost return label and, once received, what came back and the
refund that pays it. A stock movement a return makes names it (``return_id``; one per
return, product and reason), as an order's own movements name the order.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: What a return's status may be.
RETURN_STATUSES = "'requested', 'label_created', 'in_transit', 'received', 'refunded', 'cancelled'"


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "returns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("lines", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), server_default="requested", nullable=False),
        sa.Column("request_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("shipment_id", sa.String(255), nullable=True),
        sa.Column("tracking_code", sa.String(255), nullable=True),
        sa.Column("label_url", sa.Text(), nullable=True),
        sa.Column("received_lines", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["refund_id"], ["refunds.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "request_key", name="uq_returns_order_request_key"),
        sa.CheckConstraint(f"status IN ({RETURN_STATUSES})", name="ck_returns_status"),
    )  # fmt: skip
    op.create_index("ix_returns_order_id", "returns", ["order_id"])
    op.add_column("stock_movements", sa.Column("return_id", sa.Uuid(), nullable=True))
    op.create_foreign_key("fk_stock_movements_return_id", "stock_movements", "returns",
                          ["return_id"], ["id"])  # fmt: skip
    op.create_index("uq_stock_movements_return", "stock_movements",
                    ["return_id", "product_id", "reason"], unique=True,
                    postgresql_where=sa.text("return_id IS NOT NULL"))  # fmt: skip


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("uq_stock_movements_return", table_name="stock_movements")
    op.drop_constraint("fk_stock_movements_return_id", "stock_movements", type_="foreignkey")
    op.drop_column("stock_movements", "return_id")
    op.drop_table("returns")
