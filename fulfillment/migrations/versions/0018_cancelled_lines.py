"""cancelling some of an order's lines

``orders.cancelled_lines``: the units cancelled before they shipped, ``[{"product_id",
"quantity", "amount", "refunded"}]`` (one entry per cancel and product; ``refunded``: the
money had been taken, and a refund by those lines gives it back). ``orders.amount_cancelled``:
what will never be taken, in minor units (units cancelled before the charge or the
capture): the charge asks ``total_amount - amount_cancelled``, the capture takes that.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("cancelled_lines", postgresql.JSONB(),
                                      server_default=sa.text("'[]'::jsonb"), nullable=False))  # fmt: skip
    op.add_column("orders", sa.Column("amount_cancelled", sa.BigInteger(),
                                      server_default=sa.text("0"), nullable=False))  # fmt: skip
    op.create_check_constraint("ck_orders_cancelled", "orders",
                               "amount_cancelled >= 0 AND amount_cancelled <= total_amount")  # fmt: skip


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_constraint("ck_orders_cancelled", "orders", type_="check")
    op.drop_column("orders", "amount_cancelled")
    op.drop_column("orders", "cancelled_lines")
