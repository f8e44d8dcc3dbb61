"""The bootstrap: config → database → keys → applications → servicers, built in one place
(STYLE.md §4). Tests build the same graph with their own config."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from node.config import Config
from node.services.catalog import CatalogApplication, Clock, utc_now
from node.storage.database import make_engine, migrate
from node.storage.unit_of_work import UnitOfWorkFactory
from security.keys import KeyStore

log = logging.getLogger(__name__)


@dataclass
class Node:
    config: Config
    engine: Engine
    keys: KeyStore
    catalog: CatalogApplication

    def close(self) -> None:
        self.engine.dispose()


def build(config: Config, *, clock: Clock = utc_now, apply_migrations: bool = True) -> Node:
    if apply_migrations:
        migrate(config.database_url)
    engine = make_engine(config.database_url)
    keys = KeyStore.load(config.keys_dir)
    uow = UnitOfWorkFactory(engine)
    return Node(config=config, engine=engine, keys=keys, catalog=CatalogApplication(uow, clock))
