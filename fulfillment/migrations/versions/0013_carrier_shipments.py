"""carrier shipments: the shipment made for a reference, kept before it is bought

EasyPost's shipment list cannot be searched by reference, so a retry that came long
after a purchase whose commit was lost could not find the label and bought a second
one. The gateway now keeps the shipment it made for a reference (an order id,
``return_<id>``) in this table, committed, before it buys, and buys only that one.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "carrier_shipments",
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("shipment_id", sa.String(255), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )  # fmt: skip


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_table("carrier_shipments")
