"""Engine creation for the two supported databases: SQLite (embedded default, WAL) and PostgreSQL
(psycopg 3), and the migrations that bring either to the current schema."""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> URL:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy's default would be psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        # a connection per RPC thread (32): an overflow connection is closed when returned, so a pool smaller
        # than the threads opened (and configured) a new SQLite connection for most calls under load
        engine = create_engine(parsed, pool_size=pool_size * 4, max_overflow=8, pool_pre_ping=False)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_size=pool_size, max_overflow=8, pool_pre_ping=True)
    raise ValueError(f"database.url: unsupported database {parsed.get_backend_name()!r} (sqlite or postgresql)")


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()
SQLITE_BUSY_TIMEOUT_S = 30.0


def sqlite_write_lock(engine: Engine) -> threading.RLock | None:
    """The lock this process's SQLite writers take before BEGIN IMMEDIATE (None on PostgreSQL).

    Why: SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's busy
    handler by a fixed back-off (up to 100 ms a try) however soon the lock is free. The audit writer and the
    verification quota each commit in groups from their own threads; queueing them on a Python lock hands
    the write lock over the moment a commit ends. Other processes still meet ``busy_timeout``."""
    if engine.dialect.name != "sqlite":
        return None
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.RLock()
        return lock


SQLITE_CHANGES_AT_BEGIN = "exnode_changes_at_begin"
"""``Connection.info`` key: the driver's ``total_changes`` when the transaction began (more now: it wrote)."""


def sqlite_transaction_wrote(connection: Connection) -> bool:
    """Whether this SQLite transaction has changed a row (its reads then see rows that may yet roll back)."""
    began = connection.info.get(SQLITE_CHANGES_AT_BEGIN)
    return began is None or connection.connection.driver_connection.total_changes != began


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers; synchronous=FULL because an answered write is a promise; and
    SQLAlchemy's documented recipe to let us emit BEGIN ourselves, so writers take the lock up front
    (BEGIN IMMEDIATE) instead of failing on a lock upgrade under contention."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        driver = conn.connection.driver_connection
        if conn.get_execution_options().get("exnode_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # on the driver's connection: a deferred BEGIN takes no lock, so it cannot wait or fail on one,
            # and SQLAlchemy's statement machinery was a third of a short read's cost (every verification's)
            driver.execute("BEGIN")
        conn.info[SQLITE_CHANGES_AT_BEGIN] = driver.total_changes


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolates "%": a multi-host URL (host=127.0.0.1%3A5432&host=…), a quoted password or a TLS file path has one
    config.set_main_option("sqlalchemy.url",
                           normalise_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    return config


class _OnlyUpgrades(logging.Filter):
    """Alembic announces its dialect at every start ("Context impl SQLiteImpl.", "Will assume …"): noise
    before the one line a failed start prints. What it upgrades stays in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Context impl", "Will assume"))


_ONLY_UPGRADES = _OnlyUpgrades()


def migrate(url: str) -> None:
    """Bring the database to the newest schema (idempotent); ``exnode init`` and ``serve`` call it."""
    logging.getLogger("alembic.runtime.migration").addFilter(_ONLY_UPGRADES)
    command.upgrade(alembic_config(url), "head")


def make_migration_engine(url: str) -> Engine:
    parsed = normalise_url(url)
    engine = create_engine(parsed, poolclass=NullPool)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine
