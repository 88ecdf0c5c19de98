"""address verification and label voids: the order state ``address_invalid`` and the
``label_voids`` table

An order whose address the carrier refuses waits in ``address_invalid`` for the
customer's fix or an operator's override. A label bought for goods that will not ship
(the order was cancelled or refunded after a purchase whose commit was lost) is voided
through the carrier's refund, and each void is a row followed until the carrier settles
it: ``submitted`` until ``refunded``, ``rejected`` or ``not_applicable``.

The status check is rebuilt from the states it holds when this revision runs, plus
``address_invalid``, so it keeps the states other branches of the schema added (it
runs after 0006, which rebuilds the check from a fixed list).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
#: (It adds its state to whatever the status check holds, so the revisions before it,
#: 0006 among them, may add theirs.)
depends_on = None

#: The state this revision adds.
STATE = "address_invalid"
#: What a void's status may be.
VOID_STATUSES = "'submitted', 'refunded', 'rejected', 'not_applicable'"


def _states() -> list[str]:
    definition = op.get_bind().scalar(sa.text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_orders_status'"
    ))  # fmt: skip
    return re.findall(r"'([a-z_]+)'", definition or "")


def _status_check(states: list[str]) -> None:
    op.drop_constraint("ck_orders_status", "orders", type_="check")
    listed = ", ".join(f"'{state}'" for state in states)
    op.create_check_constraint("ck_orders_status", "orders", f"status IN ({listed})")


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    states = _states()
    _status_check([*states, STATE] if STATE not in states else states)
    op.create_table(
        "label_voids",
        sa.Column("shipment_id", sa.String(255), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("shipment_id"),
        sa.CheckConstraint(f"status IN ({VOID_STATUSES})", name="ck_label_voids_status"),
    )  # fmt: skip
    op.create_index("ix_label_voids_order_id", "label_voids", ["order_id"])
    op.create_index("ix_label_voids_submitted", "label_voids", ["requested_at"],
                    postgresql_where=sa.text("status = 'submitted'"))  # fmt: skip


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_table("label_voids")
    op.execute(f"UPDATE orders SET status = 'fulfilling' WHERE status = '{STATE}'")
    _status_check([state for state in _states() if state != STATE])
