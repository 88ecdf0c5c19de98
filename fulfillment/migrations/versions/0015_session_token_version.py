"""session token versions: each refresh session carries its account's token version at
issue, so a session older than the account's last password reset or change is refused
on refresh and reported by ``fulfillment verify``; and no password reset token is left
in a notification row that is no longer waiting to be sent

Live sessions take their account's current version. Those created before the account's
last confirmed reset were missed by it (a refresh committing while the reset ran) and
are revoked; the secrets a mail kept after its send (a worker that died before marking
it sent) are taken out.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "refresh_sessions",
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute("""
        UPDATE refresh_sessions s SET revoked_at = now()
        FROM (SELECT user_id, max(used_at) AS at FROM password_resets
              WHERE used_at IS NOT NULL GROUP BY user_id) last_reset
        WHERE s.user_id = last_reset.user_id AND s.created_at < last_reset.at
          AND s.revoked_at IS NULL
    """)
    op.execute("""
        UPDATE refresh_sessions s SET token_version = u.token_version
        FROM users u
        WHERE u.id = s.user_id AND u.token_version <> 0 AND s.revoked_at IS NULL
          AND s.used_at IS NULL
    """)
    op.execute("""
        UPDATE notifications SET data = data - ARRAY['token', 'reset_url']
        WHERE status <> 'pending' AND data ?| ARRAY['token', 'reset_url']
    """)


def downgrade() -> None:
    op.drop_column("refresh_sessions", "token_version")
