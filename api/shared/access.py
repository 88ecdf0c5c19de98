"""Who may call a route: declared once in the route table (``Route.auth``) and enforced
here, so handlers never check by hand.

- ``public``: anyone;
- ``user``: a signed-in account, customer or admin (401 without a valid token);
- ``admin``: an admin account (403 for the others).

The token says who is calling; the database says whether that account may still act
and with which role: ``(is_active, role)`` of the account, read in one prepared
single-row lookup outside any transaction and then kept by the process until the
database announces a change of that account (``api.shared.accounts``). A deleted or disabled
account is refused at once (401 ``account_disabled``), and a role change takes effect
on the next request, whatever the token's own ``role`` claim says.
"""

from __future__ import annotations

import functools
import uuid
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.ext.asyncio import AsyncEngine

from api.shared.accounts import AccountState
from api.shared.context import ACCOUNT_STATES, ENGINE, TOKENS
from api.shared.errors import ErrorCode, forbidden, unauthorized
from api.shared.principal import PRINCIPAL
from api.shared.rawdb import raw_connection
from api.shared.tokens import InvalidToken, Principal

Access = Literal["public", "user", "admin"]

#: The account behind a token; columns tied to the model by the raw-SQL drift test.
ACCOUNT = "SELECT is_active, role, token_version FROM users WHERE id = %s"


def guarded(handler: Handler, access: Access) -> Handler:
    """``handler``, behind the check its route's ``access`` asks for."""
    if access == "public":
        return handler

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        principal = await caller(request)
        if access == "admin" and not principal.is_admin:
            raise forbidden()
        request[PRINCIPAL] = principal
        return await handler(request)

    return guard


async def caller(request: web.Request) -> Principal:
    """The account a valid ``Authorization: Bearer`` access token names, with its role
    as the database has it now; 401 when there is no such token or active account."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send an access token as 'Authorization: Bearer <token>'")
    try:
        claimed = request.app[TOKENS].verify_access(token.strip())
    except InvalidToken:
        raise unauthorized(
            "the access token is invalid or expired", ErrorCode.INVALID_TOKEN
        ) from None
    account = await known_account(request.app, claimed.user_id)
    if account is None or not account[0]:
        raise unauthorized(
            "the account no longer exists or is disabled", ErrorCode.ACCOUNT_DISABLED
        )
    if claimed.token_version < account[2]:  # issued before a new password
        raise unauthorized("the access token was revoked; log in again", ErrorCode.INVALID_TOKEN)
    return Principal(user_id=claimed.user_id, role=account[1])


async def known_account(app: web.Application, user_id: uuid.UUID) -> AccountState | None:
    """(is_active, role, token_version) as this process last read it, while the
    database has not said the account changed since (``api.shared.accounts``); else read now."""
    states = app[ACCOUNT_STATES]
    known = states.get(user_id)
    if known is not None:
        return known
    read_at = states.generation
    account = await account_status(app[ENGINE], user_id)
    if account is not None:
        states.keep(user_id, (account[0], account[1], account[2]), read_at=read_at)
    return account


async def account_status(engine: AsyncEngine, user_id: uuid.UUID) -> AccountState | None:
    """(is_active, role, token_version) of the account, or None when it is gone.
    Autocommit for the one statement: a read needs no transaction, so it costs one
    round trip."""
    async with raw_connection(engine) as conn:
        await conn.set_autocommit(True)
        try:
            cursor = await conn.execute(ACCOUNT, (user_id,), prepare=True)
            return await cursor.fetchone()
        finally:
            await conn.set_autocommit(False)
