"""An account's refresh sessions, and the one lock every writer of them takes.

The writers: a login (a new family of sessions), a refresh (rotates one; a spent token
presented again revokes its family), a logout (revokes the family), a password change
(``api.users.views``) and a password reset (``api.users.password_reset``), which raise the account's
token version and revoke every session. Each one first takes its account's row
``FOR NO KEY UPDATE`` in a statement of its own, and holds it to its commit. So they run
one at a time per account, and every statement after the lock sees each session the
writer before it committed: a reset revokes the session a refresh made a moment ago, or
the refresh, waiting behind the reset, finds its session revoked. The order is always
the account, then its sessions (then its reset tokens): no two writers deadlock.

``NO KEY UPDATE`` conflicts with itself and with the account's own updates, not with the
``KEY SHARE`` lock an order's foreign key takes: placing orders never waits on it.
Nobody holds it across a provider call or a password hash.

The token version is the second guard, and what ``fulfillment verify`` checks: a
session carries its account's version at issue, access tokens carry it too
(``api.shared.tokens``), and the access check (``api.shared.access``, from its per-process cache that
the database's ``account_changed`` notification clears) and the refresh refuse anything
older than the account's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.tokens import TokenService, hash_refresh_token, new_refresh_token
from api.users.schemas import TokenOut
from fulfillment.models import RefreshSession, User
from fulfillment.settings import Settings


def _account_lock(query: Select) -> Select:
    return query.with_for_update(key_share=True).execution_options(populate_existing=True)


async def lock_account(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The account, read again under its lock (None when it is gone)."""
    return await session.scalar(_account_lock(select(User).where(User.id == user_id)))


async def lock_account_of(session: AsyncSession, token_hash: str) -> User | None:
    """The account of the refresh token ``token_hash``, under its lock (None: no such
    token)."""
    owner = select(RefreshSession.user_id).where(RefreshSession.token_hash == token_hash)
    return await session.scalar(
        _account_lock(select(User).where(User.id == owner.scalar_subquery()))
    )


async def issue(
    session: AsyncSession,
    *,
    user: User,
    family_id: uuid.UUID,
    tokens: TokenService,
    settings: Settings,
) -> TokenOut:
    """A new refresh session of ``family_id`` and the access token beside it, both of
    the account's token version; the caller holds the account's lock."""
    refresh_token = new_refresh_token()
    session.add(
        RefreshSession(
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            token_version=user.token_version,
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    return TokenOut(
        access_token=tokens.issue_access(
            user_id=user.id, role=user.role, token_version=user.token_version
        ),
        refresh_token=refresh_token,
        expires_in=tokens.access_ttl_seconds,
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshSession)
        .where(RefreshSession.family_id == family_id, RefreshSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def end_every_session(session: AsyncSession, user: User) -> None:
    """A new password: the account's token version goes up (every access token issued
    before is refused from the next request) and every refresh session is revoked. The
    caller holds the account's lock."""
    user.token_version += 1
    await session.execute(
        update(RefreshSession)
        .where(RefreshSession.user_id == user.id, RefreshSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
