"""The unit of work: one use case's writes commit together or not at all (STYLE.md §2)."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.engine import Connection, Engine

from node.storage.catalog_repository import CatalogRepository
from node.storage.exchange_repository import ExchangeRepository
from node.storage.lists_repository import ListsRepository
from node.storage.pull_repository import PullRepository


class UnitOfWork:
    """``with uow:`` opens one transaction; ``commit()`` at the end of the block makes it durable.

    Leaving the block without commit (an exception, or a read-only use case) rolls back. Write use cases
    pass ``write=True`` so SQLite takes its write lock at BEGIN rather than failing on upgrade.
    """

    def __init__(self, engine: Engine, *, write: bool = False) -> None:
        self._engine = engine
        self._write = write
        self._connection: Connection | None = None
        self.catalog: CatalogRepository
        self.lists: ListsRepository
        self.exchange: ExchangeRepository
        self.pull: PullRepository

    def __enter__(self) -> UnitOfWork:
        connection = self._engine.connect()
        if self._write:
            connection = connection.execution_options(exnode_write=True)
        connection.begin()
        self._connection = connection
        self.catalog = CatalogRepository(connection)
        self.lists = ListsRepository(connection)
        self.exchange = ExchangeRepository(connection)
        self.pull = PullRepository(connection)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._connection is not None
        try:
            if self._connection.in_transaction():
                self._connection.rollback()
        finally:
            self._connection.close()
            self._connection = None

    @property
    def connection(self) -> Connection:
        assert self._connection is not None, "the unit of work is not open"
        return self._connection

    def commit(self) -> None:
        self.connection.commit()


class UnitOfWorkFactory:
    """Hands out units of work on one engine; the bootstrap builds it, tests build it on their database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, *, write: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, write=write)
