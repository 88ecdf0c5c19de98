"""checkout quotes: shipping options and tax before the order

``quotes`` keeps what an order would cost (``POST /v1/checkout/quotes``): its lines as the
catalogue priced them, the shipping address, and each shipping option with its tax and
the Stripe Tax calculation behind it, until ``expires_at``. ``products.tax_code`` is a
product's Stripe Tax code (none: general tangible goods).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("products", sa.Column("tax_code", sa.String(length=32), nullable=True))
    op.create_table(
        "quotes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "customer_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("items", postgresql.JSONB(), nullable=False),
        sa.Column("shipping_address", postgresql.JSONB(), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("options", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("subtotal >= 0", name="ck_quotes_subtotal"),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name="ck_quotes_currency"),
    )
    op.create_index("ix_quotes_customer_id", "quotes", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_quotes_customer_id", table_name="quotes")
    op.drop_table("quotes")
    op.drop_column("products", "tax_code")
