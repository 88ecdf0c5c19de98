"""The raw SQL of the hot paths (order placement, webhook intake) names tables and columns
by hand; this ties every one it writes or reads back to the models, so the schema
cannot drift under it unnoticed (the migrations are tied to the models by
``tests/integration/test_migrations.py``)."""

from __future__ import annotations

import re

import pytest

from api.intake import providers as webhooks
from api.intake import sendgrid as sendgrid_webhook
from api.orders import placement
from api.shared import access
from api.users import password_reset
from fulfillment.models import Base

TABLES = {name: set(table.columns.keys()) for name, table in Base.metadata.tables.items()}

#: Every raw statement of the hot paths, by name.
STATEMENTS = {
    "placement.WRITE_BATCH": placement.WRITE_BATCH,
    "placement.STORED": placement.STORED,
    "placement.PRODUCTS": placement.PRODUCTS,
    "placement.FORGET": placement.FORGET,
    "access.ACCOUNT": access.ACCOUNT,
    "webhooks.STORE_STRIPE": webhooks.STORE_STRIPE,
    "webhooks.STORE_TRACKER": webhooks.STORE_TRACKER,
    "sendgrid_webhook.STORE_EVENTS": sendgrid_webhook.STORE_EVENTS,
    "password_reset.REQUEST": password_reset.REQUEST,
    "password_reset.CHECK": password_reset.CHECK,
    "password_reset.LOCK_ACCOUNT": password_reset.LOCK_ACCOUNT,
    "password_reset.CONFIRM": password_reset.CONFIRM,
}

INSERT = re.compile(r"INSERT INTO (\w+)\s*\(([^)]*)\)", re.S)
UPDATE = re.compile(r"UPDATE (\w+)(?: (\w+))?\s+SET (.*?)\s(?:FROM|WHERE|RETURNING)\b", re.S)
FROM = re.compile(r"\b(?:FROM|JOIN|DELETE FROM)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?")
QUALIFIED = re.compile(r"\b(\w+)\.(\w+)\b")


def writes(sql: str) -> list[tuple[str, str]]:
    """(table, column) for every column an INSERT or UPDATE names."""
    found = []
    for table, columns in INSERT.findall(sql):
        found += [(table, column.strip()) for column in columns.split(",")]
    for table, _alias, sets in UPDATE.findall(sql):
        found += [(table, column) for column in re.findall(r"(?:^|,)\s*(\w+)\s*=", sets)]
    return found


def reads(sql: str) -> list[tuple[str, str]]:
    """(table, column) for every ``alias.column`` whose alias names a real table."""
    aliases = {}
    for table, alias in FROM.findall(sql):
        if table in TABLES:
            aliases[table] = table
            if alias and alias.upper() not in {"WHERE", "ON", "AS", "JOIN", "LEFT"}:
                aliases[alias] = table
    return [(aliases[a], c) for a, c in QUALIFIED.findall(sql) if a in aliases]


SIMPLE = re.compile(r"^(?:SELECT (.*?) FROM|DELETE FROM) (\w+) WHERE (.*)$", re.S)


def single_table(sql: str) -> list[tuple[str, str]]:
    """(table, column) of a one-table SELECT or DELETE: its list and its conditions."""
    match = SIMPLE.match(sql.strip())
    if match is None:
        return []
    listed, table, where = match.groups()
    columns = [c.strip() for c in (listed or "").split(",") if c.strip()]
    columns += re.findall(r"(\w+)\s*(?:=|<|>)", where)
    return [(table, column) for column in columns]


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
