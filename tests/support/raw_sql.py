"""The tables and columns a raw SQL statement names, read back by pattern (what it writes,
what it reads through an alias, a one-table SELECT or DELETE), and the models' own
columns to check them against. No I/O."""

from __future__ import annotations

import re

from fulfillment.models import Base

TABLES = {name: set(table.columns.keys()) for name, table in Base.metadata.tables.items()}


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
