"""Password hashing with argon2id (argon2-cffi's recommended parameters).

Hashing costs about 0.1 s of CPU on purpose: async callers run these functions in a
thread (``asyncio.to_thread``) so the event loop keeps serving.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A real hash to verify against when the account does not exist, so a login for
    an unknown e-mail costs as much as one with a wrong password."""
    return _hasher.hash("not-a-real-password-0f3c9a")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        matched = _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None
