"""refund key spaces: a refund is unique per (order, source, request key)

An operator's ``Idempotency-Key`` and the keys the saga gives its own refunds
(``compensation``, ``return_<id>``) used to share one space per order: a client key
spelled like an internal one made the compensation reuse an operator's partial refund,
or made a return's refund insert silently skip. The unique key now includes the
refund's source (``operator``, ``compensation``, ``return``): a client key can only
meet another operator refund.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_unique_constraint(
        "uq_refunds_order_source_request_key", "refunds", ["order_id", "source", "request_key"]
    )
    op.drop_constraint("uq_refunds_order_request_key", "refunds", type_="unique")


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_unique_constraint(
        "uq_refunds_order_request_key", "refunds", ["order_id", "request_key"]
    )
    op.drop_constraint("uq_refunds_order_source_request_key", "refunds", type_="unique")
