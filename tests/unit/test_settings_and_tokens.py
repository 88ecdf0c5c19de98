from __future__ import annotations

import time
import uuid

import jwt
import pytest

from api.tokens import InvalidToken, TokenService, hash_refresh_token, new_refresh_token
from fulfillment.settings import ConfigError, load_settings, to_sqlalchemy_url


def test_an_invalid_value_stops_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    monkeypatch.setenv("API_PORT", "99999")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "DATABASE_URL" in str(caught.value) and "API_PORT" in str(caught.value)


def test_unset_urls_mean_the_embedded_default(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url is None and settings.redis_url is None
    assert settings.uses_dev_jwt_secret


def test_secrets_do_not_show_in_reprs(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_very_secret")
    assert "sk_live_very_secret" not in repr(load_settings())


def test_database_urls_always_use_psycopg_3():
    assert to_sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert to_sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


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
