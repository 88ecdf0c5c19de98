"""account changes are announced: a NOTIFY on ``account_changed`` with the user's id
whenever an account is disabled, enabled, deleted or changes role

The API keeps the state of the accounts it has seen (active, role) in memory and forgets
an account as soon as this notification says it changed, so a signed-in request costs
no database round trip and a disabled account is still refused at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: The channel; ``api.shared.accounts`` listens on it.
CHANNEL = "account_changed"


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute(f"""
        CREATE FUNCTION notify_account_changed() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', OLD.id::text);
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER users_account_changed
        AFTER UPDATE OF is_active, role ON users
        FOR EACH ROW WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active
                           OR OLD.role IS DISTINCT FROM NEW.role)
        EXECUTE FUNCTION notify_account_changed()
    """)
    op.execute("""
        CREATE TRIGGER users_account_deleted
        AFTER DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION notify_account_changed()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS users_account_deleted ON users")
    op.execute("DROP TRIGGER IF EXISTS users_account_changed ON users")
    op.execute("DROP FUNCTION IF EXISTS notify_account_changed()")
