"""Who is calling (the principal the route's access guard, ``api.access``, found), and
the login, refresh and logout endpoints (refresh tokens rotate; presenting a used one
revokes its whole family)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import PASSWORDS, SESSIONS, SETTINGS, TOKENS
from api.errors import unauthorized
from api.jsonio import read_model, respond
from api.schemas import LoginRequest, RefreshRequest, TokenOut
from api.tokens import Principal, hash_refresh_token, new_refresh_token
from fulfillment.models import RefreshSession, User

PRINCIPAL = web.RequestKey("principal", Principal)


def authenticate(request: web.Request) -> Principal:
    """The caller of a signed-in route, as its access guard (``api.access``) found them:
    a valid token of an active account, with the role the database gives it now."""
    principal = request.get(PRINCIPAL)
    if principal is None:  # a handler of a public route asked: a bug, not a 401
        raise RuntimeError(f"{request.path} is declared public in api/routes.py")
    return principal


async def login(request: web.Request) -> web.Response:
    body = await read_model(request, LoginRequest)
    async with request.app[SESSIONS]() as session, session.begin():
        user = await session.scalar(
            select(User).where(func.lower(User.email) == body.email.strip().lower())
        )
        password_hash = user.password_hash if user is not None else None
        valid = await request.app[PASSWORDS].verify(password_hash, body.password)
        if user is None or not valid or not user.is_active:
            raise unauthorized("the e-mail or password is wrong", "invalid_credentials")
        tokens = await _issue(request, session, user=user, family_id=uuid.uuid4())
    return respond(tokens)


async def refresh(request: web.Request) -> web.Response:
    body = await read_model(request, RefreshRequest)
    now = datetime.now(UTC)
    async with request.app[SESSIONS]() as session, session.begin():
        current = await session.scalar(
            select(RefreshSession)
            .where(RefreshSession.token_hash == hash_refresh_token(body.refresh_token))
            .with_for_update()
        )
        if current is None or current.expires_at <= now:
            raise unauthorized("the refresh token is invalid or expired", "invalid_refresh_token")
        if current.used_at is not None or current.revoked_at is not None:
            await _revoke_family(session, current.family_id, now)
            reused = True
        else:
            reused = False
            user = await session.get(User, current.user_id)
            if user is None or not user.is_active:
                raise unauthorized("the account is disabled", "invalid_refresh_token")
            current.used_at = now
            tokens = await _issue(request, session, user=user, family_id=current.family_id)
    if reused:
        raise unauthorized(
            "this refresh token was already used; the session is revoked, log in again",
            "refresh_token_reused",
        )
    return respond(tokens)


async def logout(request: web.Request) -> web.Response:
    """Revokes the session the refresh token belongs to; answers 204 whatever it was."""
    body = await read_model(request, RefreshRequest)
    async with request.app[SESSIONS]() as session, session.begin():
        family_id = await session.scalar(
            select(RefreshSession.family_id).where(
                RefreshSession.token_hash == hash_refresh_token(body.refresh_token)
            )
        )
        if family_id is not None:
            await _revoke_family(session, family_id, datetime.now(UTC))
    return web.Response(status=204)


async def _issue(
    request: web.Request, session: AsyncSession, *, user: User, family_id: uuid.UUID
) -> TokenOut:
    settings = request.app[SETTINGS]
    refresh_token = new_refresh_token()
    session.add(
        RefreshSession(
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    tokens = request.app[TOKENS]
    return TokenOut(
        access_token=tokens.issue_access(
            user_id=user.id, role=user.role, token_version=user.token_version
        ),
        refresh_token=refresh_token,
        expires_in=tokens.access_ttl_seconds,
    )


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshSession)
        .where(RefreshSession.family_id == family_id, RefreshSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
