"""The login, refresh and logout endpoints (refresh tokens rotate; presenting a used one
revokes its whole family). Each writes sessions under the account's lock
(``api.users.sessions``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.context import PASSWORDS, SESSIONS, SETTINGS, TOKENS
from api.shared.errors import ApiError, ErrorCode, unauthorized
from api.shared.jsonio import read_model, respond
from api.shared.tokens import hash_refresh_token
from api.users.schemas import LoginRequest, RefreshRequest, TokenOut
from api.users.sessions import issue, lock_account, lock_account_of, revoke_family
from fulfillment.checkpoints import reach_async
from fulfillment.models import RefreshSession, User


def _wrong_credentials() -> ApiError:
    return unauthorized("the e-mail or password is wrong", ErrorCode.INVALID_CREDENTIALS)


async def login(request: web.Request) -> web.Response:
    body = await read_model(request, LoginRequest)
    async with request.app[SESSIONS]() as session, session.begin():
        user = await session.scalar(
            select(User).where(func.lower(User.email) == body.email.strip().lower())
        )
        password_hash = user.password_hash if user is not None else None
        valid = await request.app[PASSWORDS].verify(password_hash, body.password)
        if user is None or not valid or not user.is_active:
            raise _wrong_credentials()
        await reach_async("login.verified")
        # checked without the lock (argon2 takes a while); a reset or a password change
        # that committed meanwhile makes the password checked no longer the account's
        user = await lock_account(session, user.id)
        if user is None or not user.is_active or user.password_hash != password_hash:
            raise _wrong_credentials()
        tokens = await _issue(request, session, user=user, family_id=uuid.uuid4())
        await session.flush()
        await reach_async("login.before_commit")
    return respond(tokens)


async def refresh(request: web.Request) -> web.Response:
    body = await read_model(request, RefreshRequest)
    token_hash = hash_refresh_token(body.refresh_token)
    async with request.app[SESSIONS]() as session, session.begin():
        user = await lock_account_of(session, token_hash)
        current = await session.scalar(
            select(RefreshSession).where(RefreshSession.token_hash == token_hash)
        )
        if user is None or current is None or current.expires_at <= datetime.now(UTC):
            raise unauthorized(
                "the refresh token is invalid or expired", ErrorCode.INVALID_REFRESH_TOKEN
            )
        if not user.is_active:
            raise unauthorized("the account is disabled", ErrorCode.INVALID_REFRESH_TOKEN)
        refused = _refusal(current, user)
        if refused is not None:
            await revoke_family(session, current.family_id)
        else:
            current.used_at = func.now()
            tokens = await _issue(request, session, user=user, family_id=current.family_id)
        await session.flush()
        await reach_async("refresh.before_commit")
    if refused is not None:
        raise refused
    return respond(tokens)


def _refusal(current: RefreshSession, user: User) -> ApiError | None:
    """Why ``current`` may not be rotated, if it may not (its family is then revoked)."""
    if current.used_at is not None or current.revoked_at is not None:
        return unauthorized(
            "this refresh token was already used; the session is revoked, log in again",
            ErrorCode.REFRESH_TOKEN_REUSED,
        )
    if current.token_version < user.token_version:  # issued before a new password
        return unauthorized(
            "the refresh token was revoked; log in again", ErrorCode.INVALID_REFRESH_TOKEN
        )
    return None


async def logout(request: web.Request) -> web.Response:
    """Revokes the session the refresh token belongs to; answers 204 whatever it was."""
    body = await read_model(request, RefreshRequest)
    token_hash = hash_refresh_token(body.refresh_token)
    async with request.app[SESSIONS]() as session, session.begin():
        if await lock_account_of(session, token_hash) is not None:
            family_id = await session.scalar(
                select(RefreshSession.family_id).where(RefreshSession.token_hash == token_hash)
            )
            await revoke_family(session, family_id)
        await reach_async("logout.before_commit")
    return web.Response(status=204)


async def _issue(
    request: web.Request, session: AsyncSession, *, user: User, family_id: uuid.UUID
) -> TokenOut:
    return await issue(
        session,
        user=user,
        family_id=family_id,
        tokens=request.app[TOKENS],
        settings=request.app[SETTINGS],
    )
