"""Access tokens (short-lived HS256 JWTs) and refresh tokens (random, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

#: The issuer and audience every access token carries and every check demands.
ISSUER = "fulfillment"
AUDIENCE = "fulfillment-api"
#: Clock skew tolerated between API processes, in seconds.
LEEWAY_SECONDS = 10


@dataclass(frozen=True)
class Principal:
    """Who a valid access token speaks for."""

    user_id: uuid.UUID
    role: str
    #: The account's token version when the token was issued: a password reset raises
    #: the account's, and tokens of an older version are refused (``api.shared.access``).
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class InvalidToken(Exception):
    pass


#: Verified access tokens kept in memory, so a client's next requests skip the HMAC and
#: claim checks; each entry still expires with its token.
VERIFIED_CACHE_SIZE = 10_000


class TokenService:
    def __init__(self, *, secret: str, access_ttl_seconds: int) -> None:
        self._secret = secret
        self.access_ttl_seconds = access_ttl_seconds
        self._verified: dict[str, tuple[Principal, int]] = {}

    def issue_access(self, *, user_id: uuid.UUID, role: str, token_version: int = 0) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "role": role,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.access_ttl_seconds,
            "typ": "access",
            "ver": token_version,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify_access(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            if claims.get("typ") != "access":
                raise InvalidToken("not an access token")
            principal = Principal(
                user_id=uuid.UUID(claims["sub"]),
                role=str(claims.get("role")),
                token_version=int(claims.get("ver", 0)),
            )
            return principal, int(claims["exp"])
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(str(exc)) from None


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored as SHA-256: they are long random strings, so a fast
    hash is enough and a leaked table cannot be replayed."""
    return hashlib.sha256(token.encode()).hexdigest()
