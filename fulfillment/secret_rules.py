"""The secrets' rules (``fulfillment.settings`` applies them at start-up): the built-in
development secrets and sandbox keys, and what makes a configured secret unusable
outside development."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

#: The JWT secret used when none is configured: accepted only in development mode.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789"
#: The webhook secrets the sandbox signs with when none is configured (development only).
SANDBOX_STRIPE_WEBHOOK_SECRET = "whsec_sandbox"
SANDBOX_EASYPOST_WEBHOOK_SECRET = "easypost-sandbox-secret"
#: The public half of the key the sandbox signs SendGrid's event webhook with (base64
#: DER, as SendGrid's settings page shows a key); accepted only in development.
SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErrWPeg0RpTigAWiwNJV4zIoAnI6oZRvY9qXFJXUwHUCNKJ/0SXx5"
    "KeP20M0kCfqeCS5XykY/8cpuuKOolD06fg=="
)
#: Every built-in secret: none of them may sign anything outside development.
BUILT_IN_SECRETS = frozenset(
    {DEV_JWT_SECRET, SANDBOX_STRIPE_WEBHOOK_SECRET, SANDBOX_EASYPOST_WEBHOOK_SECRET}
)
#: The shortest secret accepted outside development (HS256 wants 256 bits of key).
MIN_SECRET_BYTES = 32

#: The provider keys used when none is configured; they only work with the sandbox.
SANDBOX_KEYS = frozenset({"sk_test_sandbox", "SG.sandbox", "EZTK_sandbox"})


def is_sandbox_key(key: SecretStr) -> bool:
    return key.get_secret_value() in SANDBOX_KEYS


def secret_problems(settings: Any) -> list[str]:
    """What is wrong with the secrets, one line per variable. Outside development each
    must be real: set, not a built-in one, at least 32 bytes. A real provider key with
    that provider's sandbox webhook secret is refused even in development: forged
    webhooks would be accepted for real money and parcels."""
    checked = {"JWT_SECRET": settings.jwt_secret} if not settings.is_development else {}
    for name, key, secret in (
        ("STRIPE_WEBHOOK_SECRET", settings.stripe_api_key, settings.stripe_webhook_secret),
        ("EASYPOST_WEBHOOK_SECRET", settings.easypost_api_key, settings.easypost_webhook_secret),
    ):
        if not settings.is_development or not is_sandbox_key(key):
            checked[name] = secret
    problems = []
    if not settings.is_development or not is_sandbox_key(settings.sendgrid_api_key):
        key = settings.sendgrid_webhook_public_key
        if not key:
            problems.append("SENDGRID_WEBHOOK_PUBLIC_KEY: must be set")
        elif key == SANDBOX_SENDGRID_WEBHOOK_PUBLIC_KEY:
            problems.append("SENDGRID_WEBHOOK_PUBLIC_KEY: is the sandbox's development key")
    for name, secret in checked.items():
        value = secret.get_secret_value()
        if not value:
            problems.append(f"{name}: must be set")
        elif value in BUILT_IN_SECRETS:
            problems.append(f"{name}: is the built-in development secret")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{name}: must be at least {MIN_SECRET_BYTES} bytes")
    return problems
