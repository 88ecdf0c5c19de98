"""locations: the places stock ships from, and the default one

A location has a name, a ship-from address (the fields of an order's shipping address),
a priority (lower ships first), the countries it ships to (empty: everywhere) and an
active flag. One location is the default: this migration creates it, with the address
labels were bought from until now, so an existing deployment keeps working unchanged.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

#: ``integrations.easypost_gateway.DEFAULT_FROM_ADDRESS`` as of this revision, in the
#: fields of ``api.shared.schemas.Address`` (copied: a migration imports no app code).
DEFAULT_ADDRESS = {
    "name": "Fulfillment Warehouse",
    "line1": "417 Montgomery Street",
    "line2": None,
    "city": "San Francisco",
    "state": "CA",
    "postal_code": "94104",
    "country": "US",
}


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "locations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("address", postgresql.JSONB(), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("ships_to", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )  # fmt: skip
    op.create_index("uq_locations_default", "locations", ["is_default"], unique=True,
                    postgresql_where=sa.text("is_default"))  # fmt: skip
    op.execute(
        sa.text(
            "INSERT INTO locations (id, name, address, priority, active, is_default) "
            "VALUES (gen_random_uuid(), 'Default', CAST(:address AS jsonb), 0, true, true)"
        ).bindparams(address=json.dumps(DEFAULT_ADDRESS))
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_table("locations")
