"""packages ship apart: a parcel per location, and the order's status from its packages

``shipments`` is keyed by (order_id, location_id): an order taken from several locations
has a label per location (its packages, ``fulfillment.packages``). Today's shipments are
at the location their parcel left from (the one that gave most units, as the label was
bought), else the default one.

``orders.parcels``: the packages that have left, by location id (``{"carrier",
"tracking_code", "shipment_id", "status"}``). Two statuses join the order's:
``partially_shipped`` and ``partially_delivered``; two merchant events follow them, and an
event raised by a package's timeline entry carries that package (``event_package`` in
its copy of the order).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fulfillment.merchant_events import Milestone, trigger_sql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

#: The states this revision adds.
STATES = ("partially_shipped", "partially_delivered")
#: The milestones from this revision on (0007's, and the two new ones).
MILESTONES = (
    Milestone("order.created", created=True),
    Milestone("order.authorized", "authorized"),
    Milestone("order.paid", "paid"),
    Milestone("order.partially_shipped", "partially_shipped"),
    Milestone("order.shipped", "shipped"),
    Milestone("order.partially_delivered", "partially_delivered"),
    Milestone("order.delivered", "delivered"),
    Milestone("order.rejected", "rejected"),
    Milestone("order.cancelled", "cancelled"),
    Milestone("order.refunded", "refunded"),
    Milestone("order.needs_attention", "needs_attention"),
)
#: The milestones before it, for the downgrade.
MILESTONES_0007 = tuple(m for m in MILESTONES if m.status not in STATES)


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
    _status_check([*states, *(state for state in STATES if state not in states)])
    op.add_column("shipments", sa.Column("location_id", sa.Uuid(),
                                         server_default=sa.text("default_location_id()"),
                                         nullable=False))  # fmt: skip
    op.execute("""
        UPDATE shipments s SET location_id = (
            SELECT l.id FROM orders o, jsonb_array_elements(o.allocation) a
            JOIN locations l ON l.id = (a->>'location_id')::uuid
            WHERE o.id = s.order_id
            ORDER BY (a->>'quantity')::int DESC, l.priority, l.id LIMIT 1)
        WHERE EXISTS (SELECT 1 FROM orders o WHERE o.id = s.order_id
                      AND jsonb_array_length(o.allocation) > 0)
    """)
    op.create_foreign_key("fk_shipments_location_id", "shipments", "locations",
                          ["location_id"], ["id"])  # fmt: skip
    op.drop_constraint("shipments_pkey", "shipments", type_="primary")
    op.create_primary_key("shipments_pkey", "shipments", ["order_id", "location_id"])
    op.add_column("orders", sa.Column("parcels", postgresql.JSONB(),
                                      server_default=sa.text("'{}'::jsonb"), nullable=False))  # fmt: skip
    for statement in trigger_sql(MILESTONES, batched=False):
        op.execute(statement)


def downgrade() -> None:
    """Back to one parcel per order: an order split into packages keeps its first
    package's shipment, and its status its packages' furthest common one."""
    op.execute("SET lock_timeout = '5s'")
    for statement in trigger_sql(MILESTONES_0007, batched=False):
        op.execute(statement)
    op.drop_column("orders", "parcels")
    op.execute("""
        DELETE FROM shipments s USING shipments first
        WHERE first.order_id = s.order_id AND (first.created_at, first.location_id::text)
              < (s.created_at, s.location_id::text)
    """)
    op.drop_constraint("shipments_pkey", "shipments", type_="primary")
    op.create_primary_key("shipments_pkey", "shipments", ["order_id"])
    op.drop_constraint("fk_shipments_location_id", "shipments", type_="foreignkey")
    op.drop_column("shipments", "location_id")
    op.execute("UPDATE orders SET status = 'fulfilling' WHERE status = 'partially_shipped'")
    op.execute("UPDATE orders SET status = 'in_transit' WHERE status = 'partially_delivered'")
    _status_check([state for state in _states() if state not in STATES])
