"""The unit of work: one use case's writes commit together or not at all (STYLE.md §2).

``UnitOfWork`` is what use cases see: the repositories of one transaction (catalog, lists, exchange,
pull, tiers and the audit trail) and ``commit``; no connection leaves storage. ``SqlUnitOfWork`` is the
database's; tests/unit/fakes.py holds an in-memory one for the rules that need no database.
"""

from __future__ import annotations

import abc
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from sqlalchemy import exc, text
from sqlalchemy.engine import Connection, Engine

from node.storage.audit_repository import AuditRepository
from node.storage.catalog_repository import CatalogRepository
from node.storage.check_repository import CheckRepository
from node.storage.database import SQLITE_BUSY_TIMEOUT_S, sqlite_write_lock
from node.storage.errors import StorageFull, StorageUnavailable
from node.storage.exchange_repository import ExchangeRepository
from node.storage.lists_repository import ListsRepository
from node.storage.objections_repository import ObjectionsRepository
from node.storage.pull_repository import PullRepository
from node.storage.record_index_repository import RecordIndexRepository
from node.storage.report_repository import ReportRepository
from node.storage.secrecy import DataKeysRepository, Sealer
from node.storage.session_repository import ConsoleSessionRepository
from node.storage.tier_repository import TierRepository
from node.storage.timestamp_repository import TimestampRepository
from node.storage.verification_repository import VerificationRepository


class UnitOfWork(abc.ABC):
    """``with uow:`` opens one transaction; ``commit()`` at the end of the block makes it durable.

    Leaving the block without commit (an exception, or a read-only use case) rolls back. Write use cases
    ask for ``write=True`` so SQLite takes its write lock at BEGIN rather than failing on upgrade.
    """

    catalog: CatalogRepository
    lists: ListsRepository
    objections: ObjectionsRepository
    report: ReportRepository
    exchange: ExchangeRepository
    pull: PullRepository
    tiers: TierRepository
    audit: AuditRepository
    data_keys: DataKeysRepository
    timestamps: TimestampRepository
    record_index: RecordIndexRepository
    verifications: VerificationRepository
    checks: CheckRepository
    console_sessions: ConsoleSessionRepository

    @abc.abstractmethod
    def __enter__(self) -> UnitOfWork: ...

    @abc.abstractmethod
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def restart(self) -> None:
        """Roll back what this transaction did and begin a new one (to read what a conflict left)."""


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, engine: Engine, *, write: bool = False, sealer: Sealer | None = None) -> None:
        self._engine = engine
        self._sealer = sealer
        self._write = write
        self._connection: Connection | None = None
        self._lock = sqlite_write_lock(engine) if write else None

    def __enter__(self) -> SqlUnitOfWork:
        if self._lock is not None and not self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise StorageUnavailable(f"the database is busy: no write lock within {SQLITE_BUSY_TIMEOUT_S:.0f} s; retry")
        try:
            connection = self._engine.connect()
            if self._write:
                connection = connection.execution_options(exnode_write=True)
            connection.begin()
        except exc.DBAPIError as error:
            self._release()
            raise storage_error(error, self._engine) from error
        except BaseException:
            self._release()
            raise
        self._connection = connection
        self.catalog = CatalogRepository(connection)
        self.lists = ListsRepository(connection)
        self.objections = ObjectionsRepository(connection)
        self.report = ReportRepository(connection)
        self.exchange = ExchangeRepository(connection, self._sealer)
        self.pull = PullRepository(connection, self._sealer)
        self.tiers = TierRepository(connection, self._sealer)
        self.audit = AuditRepository(connection)
        self.data_keys = DataKeysRepository(connection, self._sealer)
        self.timestamps = TimestampRepository(connection)
        self.record_index = RecordIndexRepository(connection, self._sealer)
        self.verifications = VerificationRepository(connection, self._sealer)
        self.checks = CheckRepository(connection, self._sealer)
        self.console_sessions = ConsoleSessionRepository(connection)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._connection is not None
        try:
            if error is None:
                if self._connection.in_transaction():
                    self._connection.rollback()
            else:  # the connection may be the broken one: its rollback must not hide why
                with contextlib.suppress(exc.DBAPIError):
                    if self._connection.in_transaction():
                        self._connection.rollback()
        finally:
            with contextlib.suppress(exc.DBAPIError):
                self._connection.close()
            self._connection = None
            self._release()
        if isinstance(error, exc.DBAPIError):
            translated = storage_error(error, self._engine)
            if translated is not error:
                raise translated from error

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    @property
    def connection(self) -> Connection:
        """The transaction's connection: for storage's own code and tests that inspect tables; use cases see
        ``UnitOfWork``, which has none."""
        assert self._connection is not None, "the unit of work is not open"
        return self._connection

    def commit(self) -> None:
        try:
            self.connection.commit()
        except exc.DBAPIError as error:
            raise storage_error(error, self._engine) from error

    def restart(self) -> None:
        self.connection.rollback()
        self.connection.begin()


def storage_error(error: exc.DBAPIError, engine: Engine) -> Exception:
    """The database failure a caller can act on, or ``error`` itself (a bug: a constraint, bad SQL).

    A full disk (SQLite's SQLITE_FULL, PostgreSQL's 53100 disk_full) becomes ``StorageFull`` naming the
    disk; a database that does not answer or a connection that broke (a primary lost, a failover, an
    operator's shutdown) becomes ``StorageUnavailable``."""
    original = error.orig
    text_of = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    sqlstate = getattr(original, "sqlstate", None) or ""
    if sqlstate == "53100" or "database or disk is full" in text_of or "No space left on device" in text_of:
        return StorageFull(f"the database's disk is full: {_disk_of(engine)} ({text_of}); the write was refused "
                           f"whole, free space and retry")
    if (error.connection_invalidated or isinstance(error, exc.OperationalError | exc.InterfaceError)
            or sqlstate.startswith(("08", "57P"))):
        if engine.dialect.name == "sqlite":
            if "disk I/O error" in text_of:
                return StorageFull(f"the database's disk failed a write: {_disk_of(engine)} ({text_of}); "
                                   f"free space and retry")
            if "locked" in text_of or "busy" in text_of:
                return StorageUnavailable(f"the database is busy: {text_of}; retry")
            return error
        where = engine.url.render_as_string(hide_password=True)
        return StorageUnavailable(f"the database does not answer ({where}): {text_of}; retry (a multi-host "
                                  f"database.url reaches the new primary after a failover)")
    return error


def _disk_of(engine: Engine) -> str:
    """Which disk: the SQLite file, its filesystem and the space left there; PostgreSQL's server."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        path = Path(engine.url.database)
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            return f"{path}"
        return f"{path}, {free:,} bytes free on the filesystem of {path.parent}"
    return f"the data directory of the PostgreSQL server {engine.url.render_as_string(hide_password=True)}"


UnitOfWorkFactory = Callable[..., UnitOfWork]
"""``factory(write=False)`` → a unit of work (not yet open). The bootstrap builds ``SqlUnitOfWorkFactory``."""


class SqlUnitOfWorkFactory:
    """Hands out units of work on one engine; the bootstrap builds it, tests build it on their database."""

    def __init__(self, engine: Engine, sealer: Sealer | None = None) -> None:
        """``sealer``: the node's data keys; every node builds one (bootstrap), so what is written is sealed.
        Without it rows are written in clear, as only catalog and audit tools without personal data do."""
        self.engine = engine
        self.sealer = sealer
        if sealer is not None:
            sealer.attach(engine)

    def __call__(self, *, write: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, write=write, sealer=self.sealer)

    def ping(self) -> None:
        """A trivial query: raises when the database does not answer (health checks)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
