"""what the customer pays: subtotal, shipping and tax in the order's total

An order keeps its ``subtotal_amount`` (its lines), ``shipping_amount`` and
``tax_amount`` (its lines' tax and the shipping's, ``shipping_tax_amount`` of it), always
adding up to ``total_amount``; the carrier and service it paid for and the quote and
Stripe Tax calculation it was priced by; the tax transaction recorded at capture and the
tax reversed since. Each line keeps its share of the tax (``order_lines.tax_amount``,
for all its units); each refund the tax it gives back, the shipping it gives back and
the reversal that gave it back at Stripe Tax. Orders placed before keep their total as
their subtotal, with no shipping and no tax.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ZERO = sa.text("0")


def upgrade() -> None:
    op.add_column("orders", sa.Column("subtotal_amount", sa.BigInteger(), nullable=True))
    op.execute("UPDATE orders SET subtotal_amount = total_amount")
    op.alter_column("orders", "subtotal_amount", nullable=False)
    for name in ("shipping_amount", "tax_amount", "shipping_tax_amount", "tax_reversed_amount"):
        op.add_column(
            "orders", sa.Column(name, sa.BigInteger(), server_default=_ZERO, nullable=False)
        )
    op.add_column("orders", sa.Column("shipping_carrier", sa.String(64), nullable=True))
    op.add_column("orders", sa.Column("shipping_service", sa.String(64), nullable=True))
    op.add_column("orders", sa.Column("quote_id", sa.Uuid(), nullable=True))
    op.add_column("orders", sa.Column("tax_calculation_id", sa.String(255), nullable=True))
    op.add_column("orders", sa.Column("tax_transaction_id", sa.String(255), nullable=True))
    op.create_check_constraint(
        "ck_orders_total_parts",
        "orders",
        "subtotal_amount >= 0 AND shipping_amount >= 0 AND tax_amount >= 0 "
        "AND shipping_tax_amount BETWEEN 0 AND tax_amount "
        "AND total_amount = subtotal_amount + shipping_amount + tax_amount",
    )
    op.create_check_constraint(
        "ck_orders_tax_reversed", "orders", "tax_reversed_amount BETWEEN 0 AND tax_amount"
    )
    op.add_column(
        "order_lines",
        sa.Column("tax_amount", sa.BigInteger(), server_default=_ZERO, nullable=False),
    )
    for name in ("tax_amount", "shipping_amount"):
        op.add_column(
            "refunds", sa.Column(name, sa.BigInteger(), server_default=_ZERO, nullable=False)
        )
    op.add_column("refunds", sa.Column("tax_reversal_id", sa.String(255), nullable=True))


def downgrade() -> None:
    for name in ("tax_reversal_id", "shipping_amount", "tax_amount"):
        op.drop_column("refunds", name)
    op.drop_column("order_lines", "tax_amount")
    op.drop_constraint("ck_orders_tax_reversed", "orders", type_="check")
    op.drop_constraint("ck_orders_total_parts", "orders", type_="check")
    for name in ("tax_transaction_id", "tax_calculation_id", "quote_id", "shipping_service",
                 "shipping_carrier", "tax_reversed_amount", "shipping_tax_amount", "tax_amount",
                 "shipping_amount", "subtotal_amount"):  # fmt: skip
        op.drop_column("orders", name)
