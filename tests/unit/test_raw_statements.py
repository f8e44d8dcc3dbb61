"""The driver-cursor statements (node/storage/raw.py) answer as SQLAlchemy would, and fail as it would: a
driver error comes out as SQLAlchemy's own exception class, which the unit of work translates (a busy or
unreachable database is StorageUnavailable, never an INTERNAL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import column, exc, select, table

from node.storage import raw
from node.storage.database import make_engine

ROWS = table("rows", column("n"), column("word"))
ONE = select(ROWS.c.word).where(ROWS.c.n == 2)


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'raw.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE rows (n INTEGER PRIMARY KEY, word TEXT)")
        connection.exec_driver_sql("INSERT INTO rows VALUES (1, '低保'), (2, '救助'), (3, '婚姻')")
    yield engine
    engine.dispose()


def test_rows_are_those_sqlalchemy_reads(engine) -> None:
    with engine.connect() as connection:
        assert raw.fetch_all(connection, "SELECT n, word FROM rows WHERE n >= ? ORDER BY n", (2,)) == [
            tuple(row) for row in connection.exec_driver_sql("SELECT n, word FROM rows WHERE n >= 2 ORDER BY n")]
        assert raw.fetch_all(connection, "SELECT n FROM rows WHERE n > ?", (9,)) == []
        assert raw.fetch_one(connection, ONE, {}) == ("救助",)


def test_a_driver_error_is_raised_as_sqlalchemys_own(engine) -> None:
    with engine.connect() as connection:
        with pytest.raises(exc.OperationalError, match="no such table: missing"):
            raw.fetch_all(connection, "SELECT n FROM missing WHERE n = ?", (1,))

