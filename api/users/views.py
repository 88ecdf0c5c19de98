"""Registration and the caller's own profile."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.shared.context import PASSWORDS, SESSIONS
from api.shared.errors import ApiError, ErrorCode, unauthorized
from api.shared.jsonio import read_model, respond
from api.shared.principal import authenticate
from api.users.schemas import RegisterRequest, UpdateMeRequest, UserOut
from api.users.sessions import end_every_session, lock_account
from fulfillment.checkpoints import reach_async
from fulfillment.messages import WELCOME_USER
from fulfillment.models import User
from fulfillment.outbox import outbox_insert


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def _email_taken() -> ApiError:
    return ApiError(409, ErrorCode.EMAIL_TAKEN, "an account with this e-mail already exists")


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
        raise unauthorized("the account no longer exists or is disabled", ErrorCode.INVALID_TOKEN)
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
            user = await _change_password(request, session, user, body)
        if body.first_name is not None:
            user.first_name = body.first_name
        if body.last_name is not None:
            user.last_name = body.last_name
        await session.flush()
        await reach_async("update_me.before_commit")
    return respond(user_out(user))


async def _change_password(
    request: web.Request, session: AsyncSession, user: User, body: UpdateMeRequest
) -> User:
    """The new password set, after the current one is checked, and every session ended
    (this one too: the caller logs in again with the new password). The hashes are
    computed outside the account's lock (``api.users.sessions``), then the password checked
    is checked again under it: a reset or a change that committed meanwhile wins."""
    passwords = request.app[PASSWORDS]
    checked = user.password_hash
    if not await passwords.verify(checked, body.current_password or ""):
        raise _current_password_invalid()
    new_hash = await passwords.hash(body.password)
    locked = await lock_account(session, user.id)
    if locked is None or not locked.is_active:
        raise unauthorized("the account no longer exists or is disabled", ErrorCode.INVALID_TOKEN)
    if locked.password_hash != checked:
        raise _current_password_invalid()
    locked.password_hash = new_hash
    await end_every_session(session, locked)
    return locked


def _current_password_invalid() -> ApiError:
    return ApiError(
        422,
        ErrorCode.CURRENT_PASSWORD_INVALID,
        "changing the password needs the current password",
        {"fields": [{"field": "current_password", "message": "wrong or missing"}]},
    )
