"""Positions over the real databases: the pipeline numbers what it stores at commit, after every lower
position; the sequencer numbers whatever else arrived (relayed records, rows of older versions) in
receiving order across its chunks, records committed late after the ones already numbered, and
(PostgreSQL) with work that follows the new records on a table just filled, whose statistics say it is
empty (issue 13)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from catalog.records import Operation, Record
from node.storage.database import make_engine, migrate
from node.storage.exchange_repository import ExchangeRepository
from node.storage.pull_repository import PullRepository
from node.storage.tables import records
from tests.integration.test_pull import Provider, _node

PROVIDER = "11100000MB01284764"
LOW_INCOME = "311140001/000001"
AT = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    migrate(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def ingest(engine: Engine, batch_id: str, numbers: range, received_at: dt.datetime, resource: str = LOW_INCOME
           ) -> None:
    """One ingest transaction's records, stored as the pipeline stores them (no position)."""
    rows = [(Record(f"R{n:06d}", n, Operation.UPSERT, {"n": n}), bytes(32)) for n in numbers]
    with engine.begin() as connection:
        ExchangeRepository(connection).add_records(PROVIDER, resource, batch_id, rows, received_at)


def sequence(engine: Engine, **options: int) -> int:
    with engine.connect().execution_options(exnode_write=True) as connection, connection.begin():
        return PullRepository(connection).sequence_new_records(**options)


def positions(engine: Engine) -> list[str]:
    """Record ids in position order (unnumbered ones left out)."""
    c = records.c
    with engine.connect() as connection:
        return list(connection.execute(select(c.record_id).where(c.position.is_not(None)).order_by(c.position))
                    .scalars())


def test_the_sequencer_numbers_in_receiving_order_across_chunks_and_late_commits_after(engine: Engine):
    second = AT + dt.timedelta(seconds=1)
    ingest(engine, "b-2", range(20, 24), second)  # committed first, received later
    ingest(engine, "b-1", range(10, 13), AT)
    ingest(engine, "a-3", range(30, 32), second)  # same time as b-2: batch id decides
    ingest(engine, "z-9", range(1, 4), AT, resource="311140001/000002")  # another resource, same time as b-1

    assert sequence(engine, chunk=3) == 12  # four chunks, the last one full: one more finds nothing
    expected = ["R000010", "R000011", "R000012", "R000001", "R000002", "R000003",
                "R000030", "R000031", "R000020", "R000021", "R000022", "R000023"]
    assert positions(engine) == expected

    ingest(engine, "a-0", range(40, 42), AT - dt.timedelta(hours=1))  # received before all, committed late
    assert sequence(engine, chunk=3) == 2
    assert positions(engine) == [*expected, "R000040", "R000041"]
    assert sequence(engine) == 0
    with engine.connect() as connection:
        assert PullRepository(connection).high_water() == 14


def test_a_chunk_must_hold_at_least_one_record(engine: Engine):
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        sequence(engine, chunk=0)


def test_numbering_a_table_just_filled_by_ingest_reads_each_new_record_once(postgres_url: str):
    """The state of a table after a night's ingest: analysed while (nearly) empty, then filled, so the
    planner believes a handful of rows has no position. The sequencer then read the whole stretch of
    the provider's records once per new record (4,000 records: 8 million rows fetched); it must read
    each new record about once, counted by PostgreSQL itself for the sequencer's transaction."""
    count = 4_000
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE records")
        for start in range(0, count, 500):
            ingest(engine, f"b-{start:05d}", range(start, start + 500), AT + dt.timedelta(milliseconds=start))
        with engine.connect() as connection, connection.begin():
            numbered = PullRepository(connection).sequence_new_records(chunk=1_000)
            read = connection.exec_driver_sql(
                "SELECT seq_tup_read, idx_tup_fetch, n_tup_upd FROM pg_stat_xact_user_tables"
                " WHERE relname = 'records'").one()
        assert numbered == count
        assert read.n_tup_upd == count
        assert read.seq_tup_read + read.idx_tup_fetch <= 2 * count, read
        assert positions(engine) == [f"R{n:06d}" for n in range(count)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ingest_numbers_its_records_at_commit_so_a_pull_has_nothing_left_to_number(tmp_path: Path, backend: str,
                                                                                    request: pytest.FixtureRequest):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    node = _node(tmp_path, url)
    try:
        provider = Provider(node)
        sent = provider.send(5) + provider.send(3)
        assert positions(node.node.engine) == [r.id for r in sent]  # numbered 1..8 before any pull
        with node.node.engine.connect() as connection:
            assert PullRepository(connection).high_water() == 8
        assert sequence(node.node.engine) == 0
    finally:
        node.close()


def test_a_transaction_numbering_at_commit_waits_for_the_one_before_to_commit(postgres_url: str):
    """Positions become visible in order: the second claim waits on the sequencer's lock until the first
    transaction commits, then starts after its records (without the lock both would take position 1)."""
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    second: list[int] = []
    try:
        with engine.connect() as first, first.begin():
            assert PullRepository(first).claim_positions() == 1
            rows = [(Record("R000001", 1, Operation.UPSERT, {"n": 1}), bytes(32))]
            ExchangeRepository(first).add_records(PROVIDER, LOW_INCOME, "b-1", rows, AT, first_position=1)

            def claim() -> None:
                with engine.connect() as connection, connection.begin():
                    second.append(PullRepository(connection).claim_positions())

            waiting = threading.Thread(target=claim)
            waiting.start()
            with engine.connect() as observer:
                for _ in range(300):  # until PostgreSQL reports the second claim waiting on the advisory lock
                    if observer.exec_driver_sql(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    ).scalar_one():
                        break
                    time.sleep(0.1)
                else:
                    raise AssertionError("the second claim did not wait for the sequencer's lock")
            assert second == []
        waiting.join(30)
        assert second == [2]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_ingest_keeps_the_planner_statistics_of_records_current_as_the_table_grows(engine: Engine):
    """Autovacuum is off here and lags a night's ingest anywhere: planned with the statistics of the empty
    table a fresh node has, the duplicate check's lookup by record id went through ``ix_records_sequence``
    with a filter (800,000 records in, 650 million rows read, a million records ingested in 20 minutes).
    Ingest re-analyses ``records`` as its file grows, so the planner knows the table's size."""
    with engine.begin() as connection:  # the statistics of an empty table, as a fresh node has them
        connection.exec_driver_sql("ANALYZE records")
    for batch in range(40):
        ingest(engine, f"b{batch}", range(batch * 500 + 1, batch * 500 + 501), AT)
    with engine.connect() as connection:
        estimated = connection.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'records'").scalar()
    assert estimated is not None and estimated >= 10_000, f"the planner believes records holds {estimated} rows"
