"""the operator desk: orders held by an operator, and the indexes its filters need

- ``orders.held_from`` and the status ``on_hold``: an operator's hold stops the saga; a
  release puts the order back in the status it was held from;
- ``ix_orders_created (created_at, id)``: the desk lists every order newest first and
  filters by ``created_from`` / ``created_to``;
- ``ix_order_lines_product (product_id, order_id)``: the orders holding a product (the
  ``product`` filter; ``uq_order_lines_product`` leads with the order, so it cannot).

The other filters use indexes that exist: ``status``, ``needs_attention`` and
``stalled_minutes`` ``ix_orders_status_changed (status, status_changed_at)``; the
customer's e-mail ``uq_users_email_lower`` then ``ix_orders_customer_created``.

The status check is rewritten from the statuses it allows now plus ``on_hold`` (not
from a list spelled here), so the statuses earlier revisions added (0006, which spells
its own list, among them) are kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
#: (It adds its state to whatever the status check holds, so the revisions before it,
#: 0006 among them, may add theirs.)
depends_on = None

HOLD = "on_hold"


def _allowed_statuses() -> list[str]:
    definition = op.get_bind().scalar(sa.text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'ck_orders_status' AND conrelid = 'orders'::regclass"
    ))  # fmt: skip
    return re.findall(r"'([a-z_]+)'", definition or "")


def _status_check(states: list[str]) -> None:
    op.drop_constraint("ck_orders_status", "orders", type_="check")
    listed = ", ".join(f"'{state}'" for state in states)
    op.create_check_constraint("ck_orders_status", "orders", f"status IN ({listed})")


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    states = _allowed_statuses()
    _status_check([*states, HOLD] if HOLD not in states else states)
    op.add_column("orders", sa.Column("held_from", sa.String(32), nullable=True))
    op.create_index("ix_orders_created", "orders", ["created_at", "id"])
    op.create_index("ix_order_lines_product", "order_lines", ["product_id", "order_id"])


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_order_lines_product", table_name="order_lines")
    op.drop_index("ix_orders_created", table_name="orders")
    # a held order goes back where it was held: the sweeper then re-drives it
    op.execute(f"UPDATE orders SET status = held_from WHERE status = '{HOLD}'")
    op.drop_column("orders", "held_from")
    _status_check([state for state in _allowed_statuses() if state != HOLD])
