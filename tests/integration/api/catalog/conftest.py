"""The catalogue tests' fixtures: an admin's headers."""

from tests.support.merchant_webhooks import admin  # noqa: F401 (fixtures)
