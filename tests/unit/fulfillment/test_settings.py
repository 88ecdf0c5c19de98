"""The settings read at start-up (``fulfillment.settings``): a bad value stops start-up
naming the variable; outside development the built-in and short secrets are refused;
secrets never show in reprs. No I/O."""

from __future__ import annotations

import pytest

from fulfillment.settings import (
    DEV_JWT_SECRET,
    SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY,
    ConfigError,
    load_settings,
    to_sqlalchemy_url,
)

#: Secrets good enough for production (32 bytes and more, none of the built-in ones).
REAL_SECRETS = {
    "JWT_SECRET": "j" * 40,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "s" * 32,
    "EASYPOST_WEBHOOK_SECRET": "e" * 32,
}


#: A SendGrid event webhook verification key that is not the sandbox's.
REAL_SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeHCezM4a/xA/qfyY/GDb50E9Mw/cYBjP5jiB0mpUtCVYdp+eyEeU"
    "uYTkoX2GMMvKPgg38IWyNVOUImOBs7fUOw=="
)


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


def _production(monkeypatch, **env: str) -> None:
    """Production mode with real secrets, then ``env`` on top ("" unsets)."""
    monkeypatch.delenv("FULFILLMENT_ENV", raising=False)
    for name in ("STRIPE_API_KEY", "EASYPOST_API_KEY", "SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**REAL_SECRETS, "SENDGRID_WEBHOOK_PUBLIC_KEY": REAL_SENDGRID_KEY,
                        **env}.items():  # fmt: skip
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_production_starts_with_real_secrets(monkeypatch):
    _production(monkeypatch)
    settings = load_settings()
    assert not settings.is_development
    assert settings.jwt_secret.get_secret_value() == REAL_SECRETS["JWT_SECRET"]


@pytest.mark.parametrize("name", sorted(REAL_SECRETS))
@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "is the built-in development secret"),
        ("", "must be set"),
        ("x" * 31, "must be at least 32 bytes"),
    ],
)
def test_outside_development_a_missing_default_or_short_secret_refuses_to_start(
    monkeypatch, name, value, why
):
    _production(monkeypatch, **{name: value})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"{name}: {why}" in str(caught.value)
    assert "FULFILLMENT_ENV=development" in str(caught.value)


def test_the_built_in_jwt_secret_is_refused_even_when_set_explicitly(monkeypatch):
    _production(monkeypatch, JWT_SECRET=DEV_JWT_SECRET)
    with pytest.raises(ConfigError, match="JWT_SECRET: is the built-in development secret"):
        load_settings()


def test_development_mode_accepts_the_built_in_secrets(monkeypatch):
    _production(monkeypatch, FULFILLMENT_ENV="development", **dict.fromkeys(REAL_SECRETS))
    settings = load_settings()
    assert settings.is_development
    assert settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET


@pytest.mark.parametrize(
    ("key", "secret"),
    [("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"), ("EASYPOST_API_KEY", "EASYPOST_WEBHOOK_SECRET")],
)
def test_real_provider_keys_with_sandbox_webhook_secrets_are_refused_even_in_development(
    monkeypatch, key, secret
):
    _production(monkeypatch, FULFILLMENT_ENV="development", **dict.fromkeys(REAL_SECRETS))
    monkeypatch.setenv(key, "sk_live_or_real_key_0123456789")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"{secret}: is the built-in development secret" in str(caught.value)
    monkeypatch.setenv(secret, REAL_SECRETS[secret])
    assert load_settings().is_development


def test_an_unknown_environment_name_is_refused(monkeypatch):
    monkeypatch.setenv("FULFILLMENT_ENV", "dev")
    with pytest.raises(ConfigError, match="FULFILLMENT_ENV"):
        load_settings()


def test_cors_origins_are_a_comma_separated_allow_list(monkeypatch):
    assert load_settings().cors_origins == ()
    monkeypatch.setenv("CORS_ORIGINS", "https://shop.example.com, http://localhost:3000")
    assert load_settings().cors_origins == ("https://shop.example.com", "http://localhost:3000")
    monkeypatch.setenv("CORS_ORIGINS", "https://shop.example.com/path")
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_settings()


def test_shipping_services_are_a_comma_separated_list_of_carrier_and_service(monkeypatch):
    assert load_settings().shipping_services == ()
    monkeypatch.setenv("SHIPPING_SERVICES", "USPS:Priority, UPS:Ground")
    monkeypatch.setenv("SHIPPING_FREE_OVER", "50.00")
    settings = load_settings()
    assert settings.shipping_services == ("USPS:Priority", "UPS:Ground")
    assert str(settings.shipping_free_over) == "50.00" and settings.tax_provider == "stripe"
    monkeypatch.setenv("SHIPPING_SERVICES", "Priority")
    with pytest.raises(ConfigError, match="SHIPPING_SERVICES"):
        load_settings()
    monkeypatch.setenv("SHIPPING_SERVICES", "")
    monkeypatch.setenv("SHIPPING_HANDLING_AMOUNT", "-1")
    with pytest.raises(ConfigError, match="SHIPPING_HANDLING_AMOUNT"):
        load_settings()


def test_secrets_do_not_show_in_reprs(monkeypatch):
    _production(monkeypatch, STRIPE_API_KEY="sk_live_very_secret")
    text = repr(load_settings())
    assert "sk_live_very_secret" not in text and REAL_SECRETS["JWT_SECRET"] not in text


def test_database_urls_always_use_psycopg_3():
    assert to_sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert to_sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("value", "why"),
    [(None, "is the sandbox's development key"), ("", "must be set")],
)
def test_outside_development_the_sendgrid_webhook_key_must_be_a_real_one(monkeypatch, value, why):
    _production(monkeypatch, SENDGRID_WEBHOOK_PUBLIC_KEY=value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"SENDGRID_WEBHOOK_PUBLIC_KEY: {why}" in str(caught.value)


def test_the_sendgrid_webhook_key_must_be_an_ec_p256_public_key(monkeypatch):
    _production(monkeypatch, FULFILLMENT_ENV="development")
    for bad in ("not base64!", "aGVsbG8=", REAL_SENDGRID_KEY[:-8]):
        monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", bad)
        with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
            load_settings()
    monkeypatch.delenv("SENDGRID_WEBHOOK_PUBLIC_KEY")
    assert load_settings().sendgrid_webhook_public_key == SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY
