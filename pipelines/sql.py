"""The steps' statements, run on the psycopg connection itself.

Each statement is written once with SQLAlchemy Core against the models (so its SQL
cannot drift from the schema), compiled once for PostgreSQL, and then executed on the
session's (or SQLAlchemy connection's) own psycopg connection, in its transaction, as a server-side
prepared statement. Rows come back as named tuples (``row.id``, ``row._asdict()``).

SQLAlchemy's per-execution machinery (execution context, cache-key lookup, bind and
result processing) cost about as much worker CPU as psycopg itself, for statements
whose SQL never changes; this keeps the SQL and drops that.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.types import JSON

_DIALECT = postgresql_psycopg.dialect()


class _Compiled(NamedTuple):
    sql: str
    #: Parameters with a value of their own (literals in the statement).
    defaults: dict[str, Any]
    #: Parameters bound to a JSON column: psycopg needs them wrapped.
    json: frozenset[str]
    #: The statement itself, so that its id stays its own while it is cached.
    statement: Executable


#: By statement identity: the statements are module constants, built once.
_CACHE: dict[int, _Compiled] = {}


def _compiled(statement: Executable) -> _Compiled:
    entry = _CACHE.get(id(statement))
    if entry is None or entry.statement is not statement:
        compiled = statement.compile(dialect=_DIALECT)
        names = compiled.bind_names  # each bind parameter, and its name in the SQL
        json = frozenset(name for bind, name in names.items() if isinstance(bind.type, JSON))
        required = {name for bind, name in names.items() if bind.required}
        defaults = {name: value for name, value in compiled.params.items()
                    if name not in required}  # fmt: skip
        entry = _Compiled(compiled.string, defaults, json, statement)
        _CACHE[id(statement)] = entry
    return entry


def driver_connection(session: Session | Connection) -> psycopg.Connection:
    """The psycopg connection under ``session``'s transaction (begun if it was not)."""
    return _held(session)[0]


def _held(session: Session | Connection) -> tuple[psycopg.Connection, psycopg.Cursor]:
    """The psycopg connection under ``session``'s transaction (begun if it was not), and
    the one cursor its statements run on.

    Kept in the session's ``info`` beside the transaction it belongs to: asking the
    session for its connection costs about as much as a statement's own overhead, and
    a step runs a dozen statements in one transaction. The cursor is kept with the
    connection itself, in the pool's record of it (cleared when the pool replaces a
    dead connection), for as long as the connection lives: a new cursor per statement
    started with no loaders and dumpers, and looked up one per column and parameter
    type again (about 20 µs of a 40-column order row's 100). Every statement here reads
    its rows before the next one runs, so one cursor serves them in turn."""
    if isinstance(session, Connection):
        return _with_cursor(session.connection)
    transaction = session.get_transaction()
    held = session.info.get(_HELD)
    if held is not None and transaction is not None and held[0] is transaction:
        return held[1]
    pair = _with_cursor(session.connection().connection)
    session.info[_HELD] = (session.get_transaction(), pair)
    return pair


def _with_cursor(pooled: Any) -> tuple[psycopg.Connection, psycopg.Cursor]:
    connection = pooled.driver_connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not connection:
        cursor = connection.cursor(row_factory=namedtuple_row)
        pooled.info[_CURSOR] = cursor
    return connection, cursor


#: ``Session.info`` key of (transaction, (psycopg connection, cursor)).
_HELD = "pipelines.sql.connection"
#: The pooled connection's ``info`` key of its statements' cursor.
_CURSOR = "pipelines.sql.cursor"


def _cursor(session: Session | Connection, statement: Executable, params: dict[str, Any]):
    sql, defaults, json, _ = _compiled(statement)
    if defaults:
        params = {**defaults, **params}
    if json:
        params = {name: Jsonb(value) if name in json and value is not None else value
                  for name, value in params.items()}  # fmt: skip
    cursor = _held(session)[1]
    cursor.execute(sql, params, prepare=True)
    return cursor


def run(session: Session | Connection, statement: Executable, params: dict[str, Any]) -> int:
    """Execute; the number of rows it touched."""
    return _cursor(session, statement, params).rowcount


def run_many(session: Session | Connection, statement: Executable,
             params: list[dict[str, Any]]) -> None:  # fmt: skip
    """Execute once per set of parameters, in one round of the pipeline (psycopg's
    ``executemany``)."""
    sql, params = _bound_many(statement, params)
    _held(session)[1].executemany(sql, params)


def commit_with(session: Session, writes: list[tuple[Executable, list[dict[str, Any]]]]) -> None:
    """Execute each statement once per set of its parameters, then COMMIT, in one round
    trip (psycopg's pipeline mode): the server runs them in order as before, and the
    transaction's last writes and its commit wait on it once, not once each. An error
    in any of them (or in a trigger deferred to the commit) raises here, and nothing
    of the transaction is kept. SQLAlchemy's own commit that follows finds the
    connection idle and sends nothing."""
    connection, cursor = _held(session)
    with connection.pipeline():
        for statement, params in writes:
            sql, bound = _bound_many(statement, params)
            if len(bound) == 1:
                cursor.execute(sql, bound[0], prepare=True)
            else:
                cursor.executemany(sql, bound)
        # queued as a statement: ``connection.commit()`` would sync the pipeline on its
        # own, and its end sync again, a second round trip
        cursor.execute("COMMIT", prepare=False)


def _bound_many(
    statement: Executable, params: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    sql, defaults, json, _ = _compiled(statement)
    if defaults or json:
        params = [{**defaults, **{name: Jsonb(value) if name in json and value is not None
                                  else value for name, value in one.items()}} for one in params]  # fmt: skip
    return sql, params


def one(session: Session | Connection, statement: Executable, params: dict[str, Any]) -> Any:
    """The first row, or None."""
    return _cursor(session, statement, params).fetchone()


def rows(session: Session | Connection, statement: Executable, params: dict[str, Any]) -> list[Any]:
    return _cursor(session, statement, params).fetchall()
