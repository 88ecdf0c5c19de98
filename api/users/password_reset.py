"""Password reset by e-mail: ``POST /v1/auth/password-reset`` mails a single-use token,
``POST /v1/auth/password-reset/confirm`` trades it for a new password.

The request answers the same ``202`` whether or not an account has the e-mail, after
the same work: one statement that writes the token (kept as its SHA-256 only), the
notification and its outbox message only when an active account has that e-mail, in a
transaction that never waits for its commit to reach the disk (``synchronous_commit =
off``), so a write costs no more time than a read. A crash may lose the last instant's
requests; the customer asks again. The mail goes the normal notification road (kind
``password_reset``, one per token); the token leaves the notification row in the
statement that claims the mail for sending (``fulfillment.notifications.SECRET_DATA``).

The confirmation takes the account's lock (``api.users.sessions``: every writer of its
sessions waits for it), then marks the token used, sets the new argon2 hash, raises the
account's token version (access tokens issued before stop working at once:
``api.shared.access``), revokes every refresh session and every other reset token of the
account, all in one statement: a token works once, even when two confirmations race.
"""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlencode

from aiohttp import web

from api.shared.context import ENGINE, PASSWORDS, SETTINGS
from api.shared.errors import ApiError, ErrorCode
from api.shared.jsonio import read_model, respond
from api.shared.rawdb import raw_connection
from api.users.schemas import PasswordResetAccepted, PasswordResetConfirm, PasswordResetRequest
from fulfillment.checkpoints import reach_async
from fulfillment.messages import SEND_NOTIFICATION
from fulfillment.notifications import dedup_key
from fulfillment.outbox import current_request_id
from integrations.ports import NotificationKind

PASSWORD_RESET = NotificationKind.PASSWORD_RESET.value

#: The reset token, its notification (one per token) and the message that sends it,
#: written only when an active account has the e-mail.
REQUEST = """
    WITH account AS (
        SELECT id FROM users WHERE lower(email) = %(email)s AND is_active
    ), reset AS (
        INSERT INTO password_resets (user_id, token_hash, expires_at)
        SELECT id, %(token_hash)s, now() + make_interval(secs => %(ttl)s) FROM account
        RETURNING id, user_id, expires_at
    ), mail AS (
        INSERT INTO notifications (dedup_key, kind, user_id, data)
        SELECT replace(%(key)s, '{user_id}', user_id::text) || '_' || id, %(kind)s, user_id,
               jsonb_build_object('token', %(token)s::text, 'reset_url', %(url)s::text,
                                  'expires_at', expires_at)
        FROM reset
        RETURNING id
    )
    INSERT INTO outbox (queue_name, actor_name, kwargs, request_id)
    SELECT %(queue)s, %(actor)s, jsonb_build_object('notification_id', mail.id::text),
           %(request_id)s
    FROM mail
"""

#: Is the token good (unused, unexpired, of an active account)? Asked before hashing
#: the new password, so a bad token costs no argon2.
CHECK = """
    SELECT r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id
    WHERE r.token_hash = %s AND r.used_at IS NULL AND r.expires_at > now() AND u.is_active
"""

#: The account lock every writer of an account's sessions takes first (``api.users.sessions``),
#: in a statement of its own: two confirmations of one account (with two tokens) run one
#: after the other instead of each holding its token while waiting for the other's, and
#: ``CONFIRM``, after it, sees every session a refresh or a login committed before.
LOCK_ACCOUNT = """
    SELECT u.id FROM password_resets r JOIN users u ON u.id = r.user_id
    WHERE r.token_hash = %s FOR NO KEY UPDATE OF u
"""

#: Use the token once and apply the new password; no row when the token was not good.
CONFIRM = """
    WITH reset AS (
        UPDATE password_resets SET used_at = now()
        WHERE token_hash = %(token_hash)s AND used_at IS NULL AND expires_at > now()
        RETURNING user_id
    ), account AS (
        UPDATE users SET password_hash = %(password_hash)s, token_version = token_version + 1,
                         updated_at = now()
        FROM reset WHERE users.id = reset.user_id AND users.is_active
        RETURNING users.id
    ), other_tokens AS (
        UPDATE password_resets SET used_at = now()
        FROM account
        WHERE password_resets.user_id = account.id AND password_resets.used_at IS NULL
          AND password_resets.token_hash <> %(token_hash)s
    ), sessions AS (
        UPDATE refresh_sessions SET revoked_at = now()
        FROM account
        WHERE refresh_sessions.user_id = account.id AND refresh_sessions.revoked_at IS NULL
    )
    SELECT id FROM account
"""

ACCEPTED = PasswordResetAccepted(
    accepted=True,
    message="if an account has this e-mail address, a reset link is on its way",
)


def new_reset_token() -> str:
    return "prt_" + secrets.token_urlsafe(32)


def hash_reset_token(token: str) -> str:
    """SHA-256, as refresh tokens: a long random token needs no slow hash, and the
    table alone cannot be used to reset anyone's password."""
    return hashlib.sha256(token.encode()).hexdigest()


def invalid_token() -> ApiError:
    return ApiError(400, ErrorCode.INVALID_TOKEN, "the reset token is unknown, used or expired")


async def request_reset(request: web.Request) -> web.Response:
    body = await read_model(request, PasswordResetRequest)
    settings = request.app[SETTINGS]
    token = new_reset_token()
    separator = "&" if "?" in settings.password_reset_url else "?"
    params = {
        "email": body.email.strip().lower(),
        "token_hash": hash_reset_token(token),
        "ttl": settings.password_reset_ttl_seconds,
        "key": dedup_key(PASSWORD_RESET, order_id=None, user_id="{user_id}"),
        "kind": PASSWORD_RESET,
        "token": token,
        "url": f"{settings.password_reset_url}{separator}{urlencode({'token': token})}",
        "actor": SEND_NOTIFICATION[0],
        "queue": SEND_NOTIFICATION[1],
        "request_id": current_request_id(),
    }
    async with raw_connection(request.app[ENGINE]) as conn, conn.pipeline():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(REQUEST, params, prepare=True)
        await conn.commit()
    return respond(ACCEPTED, status=202)


async def confirm_reset(request: web.Request) -> web.Response:
    body = await read_model(request, PasswordResetConfirm)
    token_hash = hash_reset_token(body.token)
    engine = request.app[ENGINE]
    async with raw_connection(engine) as conn:
        await conn.set_autocommit(True)
        try:
            found = await (await conn.execute(CHECK, (token_hash,), prepare=True)).fetchone()
        finally:
            await conn.set_autocommit(False)
    if found is None:
        raise invalid_token()
    password_hash = await request.app[PASSWORDS].hash(body.password)
    async with raw_connection(engine) as conn, conn.pipeline():  # one round trip
        await conn.execute(LOCK_ACCOUNT, (token_hash,), prepare=True)
        cursor = await conn.execute(
            CONFIRM, {"token_hash": token_hash, "password_hash": password_hash}, prepare=True
        )
        changed = await cursor.fetchone()
        await reach_async("confirm_reset.before_commit")
        await conn.commit()
    if changed is None:  # used by a confirmation that raced this one, or just expired
        raise invalid_token()
    return web.Response(status=204)
