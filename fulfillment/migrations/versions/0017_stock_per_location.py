"""stock per location, and where each order's stock was reserved

Stock is counted per (product, location): ``inventory`` gains ``location_id`` and its key
becomes (product_id, location_id); the ledger (``stock_movements``) names the location of
every change. Today's rows move to the default location (migration 0016), so a deployment
with one location keeps working unchanged. ``default_location_id()`` is the column
default, so a writer that names no location writes at the default one.

``orders.allocation`` is where the order's stock is held: ``[{"product_id",
"location_id", "quantity"}]``, written with the reservation, under the order's row lock,
and read by whoever releases or consumes that stock. Orders that hold or consumed stock
before this revision get their lines at the default location.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute(
        "CREATE FUNCTION default_location_id() RETURNS uuid LANGUAGE sql STABLE "
        "AS $$ SELECT id FROM locations WHERE is_default $$"
    )
    default = sa.text("default_location_id()")

    op.add_column("inventory", sa.Column("location_id", sa.Uuid(), server_default=default,
                                         nullable=False))  # fmt: skip
    op.create_foreign_key("fk_inventory_location_id", "inventory", "locations",
                          ["location_id"], ["id"])  # fmt: skip
    op.drop_constraint("inventory_pkey", "inventory", type_="primary")
    op.create_primary_key("inventory_pkey", "inventory", ["product_id", "location_id"])

    op.add_column("stock_movements", sa.Column("location_id", sa.Uuid(), server_default=default,
                                               nullable=False))  # fmt: skip
    op.create_foreign_key("fk_stock_movements_location_id", "stock_movements", "locations",
                          ["location_id"], ["id"])  # fmt: skip
    op.drop_index("uq_stock_movements_order", table_name="stock_movements")
    op.create_index("uq_stock_movements_order", "stock_movements",
                    ["order_id", "product_id", "location_id", "reason"], unique=True,
                    postgresql_where=sa.text("order_id IS NOT NULL"))  # fmt: skip
    op.drop_index("uq_stock_movements_return", table_name="stock_movements")
    op.create_index("uq_stock_movements_return", "stock_movements",
                    ["return_id", "product_id", "location_id", "reason"], unique=True,
                    postgresql_where=sa.text("return_id IS NOT NULL"))  # fmt: skip

    op.add_column("orders", sa.Column("allocation", postgresql.JSONB(),
                                      server_default=sa.text("'[]'::jsonb"), nullable=False))  # fmt: skip
    op.execute(
        """
        UPDATE orders o SET allocation = held.allocation
        FROM (
            SELECT l.order_id,
                   jsonb_agg(jsonb_build_object('product_id', l.product_id,
                                                'location_id', default_location_id(),
                                                'quantity', l.quantity)
                             ORDER BY l.product_id) AS allocation
            FROM (SELECT order_id, product_id, sum(quantity)::int AS quantity
                  FROM order_lines GROUP BY order_id, product_id) l
            GROUP BY l.order_id
        ) held
        WHERE o.id = held.order_id AND o.stock_state IN ('reserved', 'consumed')
        """
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("orders", "allocation")
    op.execute("DELETE FROM stock_movements WHERE location_id <> default_location_id()")
    op.drop_index("uq_stock_movements_return", table_name="stock_movements")
    op.drop_index("uq_stock_movements_order", table_name="stock_movements")
    op.drop_constraint("fk_stock_movements_location_id", "stock_movements", type_="foreignkey")
    op.drop_column("stock_movements", "location_id")
    op.create_index("uq_stock_movements_order", "stock_movements",
                    ["order_id", "product_id", "reason"], unique=True,
                    postgresql_where=sa.text("order_id IS NOT NULL"))  # fmt: skip
    op.create_index("uq_stock_movements_return", "stock_movements",
                    ["return_id", "product_id", "reason"], unique=True,
                    postgresql_where=sa.text("return_id IS NOT NULL"))  # fmt: skip
    op.execute("DELETE FROM inventory WHERE location_id <> default_location_id()")
    op.drop_constraint("inventory_pkey", "inventory", type_="primary")
    op.drop_constraint("fk_inventory_location_id", "inventory", type_="foreignkey")
    op.drop_column("inventory", "location_id")
    op.create_primary_key("inventory_pkey", "inventory", ["product_id"])
    op.execute("DROP FUNCTION default_location_id()")
