"""The counters that tell an in-process cache whether it still holds (``cache_generations``).

A writer of a cached kind of row calls ``bump`` in its own transaction, so the change and the new counter
commit together; a reader reads the counter first in its transaction and trusts a cache entry only if it
was filled at that very counter (``node.services.caches``)."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from node.storage.tables import cache_generations

GRANTS = "grants"
CONSUMER_KEYS = "consumer_keys"
CATALOG_SEARCH = "catalog_search"
"""PostgreSQL's narrow search rows (CatalogRepository's remembered counts; SQLite's FTS5 index keeps its own)."""


def bump(connection: Connection, name: str) -> None:
    """One more change of ``name`` rows, committed with the change (a row made by an older schema or a test's
    ``create_all`` is created here)."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(cache_generations).values(name=name, generation=1)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[cache_generations.c.name],
        set_={"generation": cache_generations.c.generation + 1}))


def current(name: str) -> ColumnElement[int]:
    """The counter as a scalar subquery (0 when its row is missing), to read beside other columns."""
    return select(cache_generations.c.generation).where(
        cache_generations.c.name == bindparam(f"generation_{name}", name)).scalar_subquery()
