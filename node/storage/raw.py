"""Statements run on the driver's cursor, for the hot paths where SQLAlchemy's execution costs more than
the database's own work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ClauseElement

_compiled: dict[tuple[str, int], tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}


def fetch_one(connection: Connection, statement: ClauseElement, values: dict[str, Any]) -> tuple[Any, ...] | None:
    """``statement``'s first row as a plain tuple, run on the driver's cursor with its SQL compiled once per
    dialect. Why: SQLAlchemy's execution (cache key, execution context, result processing) cost more CPU than
    SQLite's own work for the one-row statements every VerifyClaim makes (its read on the event loop, its
    quota count in the audit writer's thread). Only for module-level statements (the cache is keyed by the
    object) whose parameters and columns need no type processing (integers, text). A driver error is raised
    as SQLAlchemy's own, so the unit of work translates it as before (StorageUnavailable, StorageFull)."""
    dialect = connection.dialect
    cached = _compiled.get((dialect.name, id(statement)))
    if cached is None:
        compiled = statement.compile(dialect=dialect)
        defaults = {compiled.bind_names[bind]: bind.effective_value for bind in compiled.binds.values()
                    if not bind.required}
        order = tuple(compiled.positiontup or ()) if dialect.positional else None
        cached = _compiled[(dialect.name, id(statement))] = (compiled.string, order, defaults)
    sql, order, defaults = cached
    params = {**defaults, **values}
    arguments: Any = tuple(params[name] for name in order) if order is not None else params
    return _on_cursor(connection, sql, arguments, lambda cursor: cursor.fetchone())


def fetch_all(connection: Connection, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Every row of a plain SQL string with positional parameters, run on the driver's cursor; a driver
    error is raised as SQLAlchemy's own, as in ``fetch_one``. Why: a SQLite catalog search is three or four
    small statements (the index generation, the page's bound, a page of FTS5 rowids) whose SQLAlchemy
    execution cost about as much as SQLite's work."""
    return _on_cursor(connection, sql, arguments, lambda cursor: cursor.fetchall())


def _on_cursor(connection: Connection, sql: str, arguments: Any, fetch: Callable[[Any], Any]) -> Any:
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, arguments)
        return fetch(cursor)
    except dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(sql, arguments, error, dialect.loaded_dbapi.Error) from error
    finally:
        cursor.close()
