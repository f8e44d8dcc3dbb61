"""The unit of work: one use case's writes commit together or not at all (STYLE.md §2).

``UnitOfWork`` is what use cases see: the repositories of one transaction (catalog, lists, exchange,
pull, tiers and the audit trail) and ``commit``; no connection leaves storage. ``SqlUnitOfWork`` is the
database's; tests/unit/fakes.py holds an in-memory one for the rules that need no database.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from node.storage.audit_repository import AuditRepository
from node.storage.catalog_repository import CatalogRepository
from node.storage.check_repository import CheckRepository
from node.storage.exchange_repository import ExchangeRepository
from node.storage.lists_repository import ListsRepository
from node.storage.pull_repository import PullRepository
from node.storage.record_index_repository import RecordIndexRepository
from node.storage.tier_repository import TierRepository
from node.storage.verification_repository import VerificationRepository


class UnitOfWork(abc.ABC):
    """``with uow:`` opens one transaction; ``commit()`` at the end of the block makes it durable.

    Leaving the block without commit (an exception, or a read-only use case) rolls back. Write use cases
    ask for ``write=True`` so SQLite takes its write lock at BEGIN rather than failing on upgrade.
    """

    catalog: CatalogRepository
    lists: ListsRepository
    exchange: ExchangeRepository
    pull: PullRepository
    tiers: TierRepository
    audit: AuditRepository
    record_index: RecordIndexRepository
    verifications: VerificationRepository
    checks: CheckRepository

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
    def __init__(self, engine: Engine, *, write: bool = False) -> None:
        self._engine = engine
        self._write = write
        self._connection: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        connection = self._engine.connect()
        if self._write:
            connection = connection.execution_options(exnode_write=True)
        connection.begin()
        self._connection = connection
        self.catalog = CatalogRepository(connection)
        self.lists = ListsRepository(connection)
        self.exchange = ExchangeRepository(connection)
        self.pull = PullRepository(connection)
        self.tiers = TierRepository(connection)
        self.audit = AuditRepository(connection)
        self.record_index = RecordIndexRepository(connection)
        self.verifications = VerificationRepository(connection)
        self.checks = CheckRepository(connection)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._connection is not None
        try:
            if self._connection.in_transaction():
                self._connection.rollback()
        finally:
            self._connection.close()
            self._connection = None

    @property
    def connection(self) -> Connection:
        """The transaction's connection: for storage's own code and tests that inspect tables; use cases see
        ``UnitOfWork``, which has none."""
        assert self._connection is not None, "the unit of work is not open"
        return self._connection

    def commit(self) -> None:
        self.connection.commit()

    def restart(self) -> None:
        self.connection.rollback()
        self.connection.begin()


UnitOfWorkFactory = Callable[..., UnitOfWork]
"""``factory(write=False)`` → a unit of work (not yet open). The bootstrap builds ``SqlUnitOfWorkFactory``."""


class SqlUnitOfWorkFactory:
    """Hands out units of work on one engine; the bootstrap builds it, tests build it on their database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, *, write: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, write=write)

    def ping(self) -> None:
        """A trivial query: raises when the database does not answer (health checks)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
