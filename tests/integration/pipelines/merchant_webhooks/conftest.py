"""The merchant webhook tests' fixtures: an admin's headers and a merchant's receiver."""

from tests.support.merchant_webhooks import admin, receiver  # noqa: F401 (fixtures)
