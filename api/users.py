"""Registration and the caller's own profile."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import authenticate
from api.context import PASSWORDS, SESSIONS
from api.errors import ApiError, unauthorized
from api.jsonio import read_model, respond
from api.schemas import RegisterRequest, UpdateMeRequest, UserOut
from fulfillment.messages import WELCOME_USER
from fulfillment.models import RefreshSession, User
from fulfillment.outbox import outbox_insert


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def _email_taken() -> ApiError:
    return ApiError(409, "email_taken", "an account with this e-mail already exists")


async def register(request: web.Request) -> web.Response:
    body = await read_model(request, RegisterRequest)
    password_hash = await request.app[PASSWORDS].hash(body.password)
    user = User(
        email=body.email.strip().lower(),
        password_hash=password_hash,
        first_name=body.first_name,
        last_name=body.last_name,
        role="customer",
    )
    try:
        async with request.app[SESSIONS]() as session, session.begin():
            session.add(user)
            await session.flush()
            await session.execute(outbox_insert(WELCOME_USER, user_id=str(user.id)))
    except IntegrityError:
        raise _email_taken() from None  # the unique index on lower(email) said no
    return respond(user_out(user), status=201)


async def _current_user(request: web.Request, session: AsyncSession) -> User:
    user = await session.get(User, authenticate(request).user_id)
    if user is None or not user.is_active:
        raise unauthorized("the account no longer exists or is disabled", "invalid_token")
    return user


async def get_me(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        user = await _current_user(request, session)
    return respond(user_out(user))


async def update_me(request: web.Request) -> web.Response:
    authenticate(request)
    body = await read_model(request, UpdateMeRequest)
    async with request.app[SESSIONS]() as session, session.begin():
        user = await _current_user(request, session)
        if body.password is not None:
            current = body.current_password or ""
            if not await request.app[PASSWORDS].verify(user.password_hash, current):
                raise ApiError(
                    422,
                    "current_password_invalid",
                    "changing the password needs the current password",
                    {"fields": [{"field": "current_password", "message": "wrong or missing"}]},
                )
            user.password_hash = await request.app[PASSWORDS].hash(body.password)
            await session.execute(  # a new password ends every other session
                update(RefreshSession)
                .where(RefreshSession.user_id == user.id, RefreshSession.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
        if body.first_name is not None:
            user.first_name = body.first_name
        if body.last_name is not None:
            user.last_name = body.last_name
    return respond(user_out(user))
