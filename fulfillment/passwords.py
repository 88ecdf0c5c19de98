"""Password hashing with argon2id (argon2-cffi's recommended parameters).

Hashing costs about 0.1 s of CPU on purpose: async callers go through
``PasswordWork``, which runs it in a thread so the event loop keeps serving, and runs
only a few at once, so a login storm queues for the hasher instead of taking every core
from the other routes.
"""

from __future__ import annotations

import asyncio
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


class PasswordWork:
    """argon2 for async callers: in threads, at most ``concurrency`` at a time."""

    def __init__(self, *, concurrency: int) -> None:
        self._gate = asyncio.Semaphore(concurrency)

    async def hash(self, password: str) -> str:
        async with self._gate:
            return await asyncio.to_thread(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        async with self._gate:
            return await asyncio.to_thread(verify_password, password_hash, password)
