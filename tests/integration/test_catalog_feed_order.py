"""The feed never skips an event, on SQLite and PostgreSQL: in particular not the PostgreSQL case where a
transaction that took a smaller position commits after one that took a larger position."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from pathlib import Path

from alembic import command
from sqlalchemy import column, insert, table, text

from catalog import model
from node.services.catalog_feed import CatalogFeed
from node.storage.catalog_repository import CatalogRepository, EventFilter
from node.storage.database import alembic_config, make_engine, migrate
from node.storage.tables import resource_versions, resources
from node.storage.unit_of_work import SqlUnitOfWorkFactory, UnitOfWork, UnitOfWorkFactory
from security.keys import KeyStore
from security.policy import Policy
from tests.conftest import resource

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def feed_on(database_url: str, tmp_path: Path) -> tuple[UnitOfWorkFactory, CatalogFeed]:
    migrate(database_url)
    uow = SqlUnitOfWorkFactory(make_engine(database_url))
    return uow, CatalogFeed(uow, Policy(), KeyStore.create(tmp_path / "keys").mac_keys(), f"t{uuid.uuid4().hex[:10]}")


def append(uow_handle: UnitOfWork, code: str) -> None:
    created = model.create(resource(code), NOW)
    uow_handle.catalog.add(created, NOW)
    uow_handle.catalog.append_events([("CREATED", created)], NOW)


def waiting_for_lock(uow: UnitOfWorkFactory) -> bool:
    """Whether some transaction of this database waits for a lock another holds (PostgreSQL; SQLite writers
    wait at BEGIN): the event log's advisory lock, or a row both writers change before it (the search
    generation's counter, which a catalog write bumps)."""
    with uow() as handle:
        if handle.connection.dialect.name != "postgresql":
            return False
        return bool(handle.connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one())


def test_an_event_committed_later_with_a_smaller_position_is_not_skipped(database_url: str, tmp_path: Path):
    uow, feed = feed_on(database_url, tmp_path)
    slow = uow(write=True).__enter__()
    append(slow, "311140001/000001")  # takes its position, then does not commit yet
    slow_position = slow.catalog.last_event_position()
    started = threading.Event()

    def fast() -> None:
        started.set()
        with uow(write=True) as handle:
            append(handle, "311140001/000002")
            handle.commit()

    writer = threading.Thread(target=fast)
    writer.start()
    started.wait()
    # Let the fast writer get as far as it can: finished (the bug) or waiting for the lock (PostgreSQL).
    while writer.is_alive() and not waiting_for_lock(uow) and uow.engine.dialect.name == "postgresql":
        time.sleep(0.01)
    seen = feed.read(0, EventFilter())
    assert [e.position for e in seen.events] == [] and seen.scanned_to < slow_position, (
        "the feed moved past a position whose transaction has not committed yet")
    slow.commit()
    slow.__exit__(None, None, None)
    writer.join(30)
    later = feed.read(seen.scanned_to, EventFilter())
    assert [e.code for e in later.events] == ["311140001/000001", "311140001/000002"]
    assert later.events[0].position == slow_position < later.events[1].position


def test_a_reader_following_concurrent_writers_gets_every_event_once_in_order(database_url: str, tmp_path: Path):
    uow, feed = feed_on(database_url, tmp_path)
    writers, per_writer = 4, 8

    def write(w: int) -> None:
        for n in range(per_writer):
            with uow(write=True) as handle:
                append(handle, f"31114000{w}/{n:06d}")
                handle.commit()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(1, writers + 1)]
    for thread in threads:
        thread.start()
    got: list[int] = []
    position = 0
    while len(got) < writers * per_writer:
        done = not any(t.is_alive() for t in threads)
        batch = feed.read(position, EventFilter(), limit=5)
        got.extend(e.position for e in batch.events)
        position = batch.scanned_to
        if done and not batch.full:
            break  # everything was committed before this read, so this read saw all of it
    for thread in threads:
        thread.join(30)
    with uow() as handle:
        everything = [row.sequence for row in handle.catalog.events_since(0, 1000)]
    assert got == everything and len(got) == writers * per_writer


def test_migration_0006_fills_the_feed_columns_of_existing_events(database_url: str):
    command.upgrade(alembic_config(database_url), "0005")
    engine = make_engine(database_url)
    created = model.create(resource("311140001/000001", name="迁移前的资源"), NOW)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO catalog_events (kind, code, version, provider_code, at) VALUES ('CREATED', :code, 1, :p, :at)"),
            {"code": created.code, "p": created.provider_code, "at": NOW})
    # The rows as the code of that schema wrote them (today's repository writes columns 0005 lacks).
    version = CatalogRepository._version_values(created.code, created.latest)
    old_versions = table("resource_versions", *(column(name, resource_versions.c[name].type) for name in version))
    with engine.begin() as connection:
        connection.execute(insert(resources).values(
            code=created.code, status=created.status.value, provider_code=created.provider_code,
            latest_version=1, published_version=None, created_at=NOW, updated_at=NOW))
        connection.execute(insert(old_versions).values(version))
    uow = SqlUnitOfWorkFactory(engine)
    command.upgrade(alembic_config(database_url), "head")
    with uow() as handle:
        [row] = handle.catalog.events_since(0, 10)
    assert (row.name, row.classification) == ("迁移前的资源", "DEPARTMENTAL")
    engine.dispose()
