"""The raw SQL of the hot paths (order placement, webhook intake) names tables and columns
by hand; this ties every one it writes or reads back to the models, so the schema
cannot drift under it unnoticed (the migrations are tied to the models by
``tests/integration/fulfillment/test_migrations.py``)."""

from __future__ import annotations

import pytest

from api.intake import providers as webhooks
from api.intake import sendgrid as sendgrid_webhook
from api.orders import placement_sql as placement
from api.shared import access
from api.users import password_reset
from tests.support.raw_sql import TABLES, reads, single_table, writes

#: Every raw statement of the hot paths, by name.
STATEMENTS = {
    "placement.WRITE_BATCH": placement.WRITE_BATCH,
    "placement.STORED": placement.STORED,
    "placement.PRODUCTS": placement.PRODUCTS,
    "placement.FORGET": placement.FORGET,
    "placement.GUARDED_WRITE": placement.GUARDED_WRITE,
    "access.ACCOUNT": access.ACCOUNT,
    "webhooks.STORE_STRIPE": webhooks.STORE_STRIPE,
    "webhooks.STORE_TRACKER": webhooks.STORE_TRACKER,
    "sendgrid_webhook.STORE_EVENTS": sendgrid_webhook.STORE_EVENTS,
    "password_reset.REQUEST": password_reset.REQUEST,
    "password_reset.CHECK": password_reset.CHECK,
    "password_reset.LOCK_ACCOUNT": password_reset.LOCK_ACCOUNT,
    "password_reset.CONFIRM": password_reset.CONFIRM,
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_column_the_hot_path_sql_names_is_in_the_models(name):
    sql = STATEMENTS[name]
    named = writes(sql) + reads(sql) + single_table(sql)
    assert named, f"{name}: nothing parsed; the check would prove nothing"
    unknown = [f"{t}.{c}" for t, c in named if t not in TABLES or c not in TABLES[t]]
    assert not unknown, f"{name} names columns the models do not have: {unknown}"


def test_the_check_catches_a_column_that_is_not_there():
    assert writes("INSERT INTO orders (id, colour) VALUES (1, 2)") == [
        ("orders", "id"), ("orders", "colour"),
    ]  # fmt: skip
    assert "colour" not in TABLES["orders"]
