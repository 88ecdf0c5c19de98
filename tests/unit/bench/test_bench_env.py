"""The environment of the systems ``make bench`` starts."""

from __future__ import annotations

from pathlib import Path

from limits import parse_many

from bench import figures, pipeline
from bench.__main__ import system_env
from fulfillment.settings import load_settings


def _per_hour(limit: str) -> float:
    return min(item.amount * 3600 / item.get_expiry() for item in parse_many(limit))


def test_the_steady_rate_search_can_register_and_log_in_a_new_set_of_customers_at_every_rate(
    monkeypatch, tmp_path: Path
):
    # Given the bench's system environment, as the API would read it
    env = system_env("postgresql://bench/db", "redis://127.0.0.1:6379/0", tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(fulfillment_env="development")
    # When the search runs every rate, then the steady load (all from one address)
    customers = (figures.LADDER_STEPS + 1) * pipeline.STEADY_CUSTOMERS
    # Then no throttle refuses them: the default registration limit (50 an hour) did
    assert _per_hour(settings.register_address_limit) >= customers
    assert _per_hour(settings.login_address_limit) >= customers
    assert _per_hour(settings.login_account_limit) >= figures.LADDER_STEPS + 1
    assert _per_hour(settings.order_customer_limit) >= 3600 * 100
