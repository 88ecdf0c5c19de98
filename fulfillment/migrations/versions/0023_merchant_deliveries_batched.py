"""merchant webhook deliveries are sent in batches by the scheduler's dispatch

The milestone trigger wrote, per delivery, a leased row and an outbox row: one
``deliver_webhook`` message, one commit recording it, and one NOTIFY (a wake of every
listening backend) per event, four of each an order with one endpoint subscribed. It now
writes the delivery due at once and nothing else; the scheduler's dispatch claims the
due deliveries every ``WEBHOOK_SWEEP_SECONDS`` and sends one ``deliver_webhooks``
message per endpoint and up to 20 deliveries, whose attempts are recorded in one commit.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from alembic import op

from fulfillment.merchant_events import Milestone, trigger_sql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

#: The milestones as of this revision (frozen here, as 0019's).
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


def upgrade() -> None:
    for statement in trigger_sql(MILESTONES, batched=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in trigger_sql(MILESTONES, batched=False):
        op.execute(statement)
