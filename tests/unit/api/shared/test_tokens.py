"""Access and refresh tokens (``api.shared.tokens``): access tokens round-trip, expire and
carry the token version; another secret or algorithm is refused; refresh tokens are
random and stored hashed. No I/O."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from api.shared.tokens import InvalidToken, TokenService, hash_refresh_token, new_refresh_token


def test_access_tokens_round_trip_and_expire():
    service = TokenService(secret="s" * 40, access_ttl_seconds=60)
    user = uuid.uuid4()
    principal = service.verify_access(service.issue_access(user_id=user, role="admin"))
    assert principal.user_id == user and principal.is_admin

    expired = jwt.encode(
        {"sub": str(user), "role": "customer", "iss": "fulfillment", "aud": "fulfillment-api",
         "iat": int(time.time()) - 600, "exp": int(time.time()) - 300, "typ": "access"},
        "s" * 40, algorithm="HS256",
    )  # fmt: skip
    with pytest.raises(InvalidToken):
        service.verify_access(expired)


def test_tokens_from_another_secret_or_algorithm_are_refused():
    service = TokenService(secret="s" * 40, access_ttl_seconds=60)
    other = TokenService(secret="t" * 40, access_ttl_seconds=60)
    token = other.issue_access(user_id=uuid.uuid4(), role="admin")
    with pytest.raises(InvalidToken):
        service.verify_access(token)
    unsigned = jwt.encode({"sub": str(uuid.uuid4())}, key=None, algorithm="none")
    with pytest.raises(InvalidToken):
        service.verify_access(unsigned)


def test_refresh_tokens_are_random_and_stored_hashed():
    a, b = new_refresh_token(), new_refresh_token()
    assert a != b and len(a) > 40
    assert hash_refresh_token(a) != a and len(hash_refresh_token(a)) == 64


def test_a_password_reset_raises_the_token_version_and_older_tokens_say_so():
    service = TokenService(secret="k" * 40, access_ttl_seconds=60)
    old = service.verify_access(service.issue_access(user_id=uuid.uuid4(), role="customer"))
    new = service.verify_access(
        service.issue_access(user_id=uuid.uuid4(), role="customer", token_version=3)
    )
    assert (old.token_version, new.token_version) == (0, 3)
