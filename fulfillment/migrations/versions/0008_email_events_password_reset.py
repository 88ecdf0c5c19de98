"""e-mail events and password resets: SendGrid's delivery events per notification, the
customer's e-mail status (a bounced or complaining address gets only essential mail),
suppressed notifications, single-use password reset tokens, and a token version per
account that a reset raises (access tokens issued before it stop working)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed")


def _notification_status_check(statuses: tuple[str, ...]) -> None:
    op.drop_constraint("ck_notifications_status", "notifications", type_="check")
    listed = ", ".join(f"'{status}'" for status in statuses)
    op.create_check_constraint("ck_notifications_status", "notifications", f"status IN ({listed})")


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "users", sa.Column("email_status", sa.String(16), server_default="ok", nullable=False)
    )
    op.add_column("users", sa.Column("email_status_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        "ck_users_email_status", "users", "email_status IN ('ok', 'bounced', 'complained')"
    )
    # a reset raises token_version: the API forgets what it kept of the account at once,
    # as it does on a disable or a role change (migration 0005's function)
    op.execute("""
        CREATE TRIGGER users_tokens_revoked
        AFTER UPDATE OF token_version ON users
        FOR EACH ROW WHEN (OLD.token_version IS DISTINCT FROM NEW.token_version)
        EXECUTE FUNCTION notify_account_changed()
    """)
    _notification_status_check((*NOTIFICATION_STATUSES, "suppressed"))
    op.create_table(
        "email_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("sg_event_id", sa.String(255), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sg_event_id", name="uq_email_events_sg_event_id"),
    )
    op.create_index("ix_email_events_notification", "email_events", ["notification_id"])
    op.create_table(
        "password_resets",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_password_resets_token_hash"),
    )
    op.create_index("ix_password_resets_user_id", "password_resets", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_password_resets_user_id", table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_index("ix_email_events_notification", table_name="email_events")
    op.drop_table("email_events")
    op.execute("UPDATE notifications SET status = 'failed' WHERE status = 'suppressed'")
    _notification_status_check(NOTIFICATION_STATUSES)
    op.execute("DROP TRIGGER IF EXISTS users_tokens_revoked ON users")
    op.drop_constraint("ck_users_email_status", "users", type_="check")
    op.drop_column("users", "token_version")
    op.drop_column("users", "email_status_at")
    op.drop_column("users", "email_status")
