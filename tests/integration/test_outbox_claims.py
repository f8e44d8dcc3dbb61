"""Replicas of one node share one outbox: each claims different rows, a dead replica's claims run out
and another takes its rows, and on PostgreSQL two claims at the same moment never take the same row
(``FOR UPDATE SKIP LOCKED``). Both databases, real servers."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import threading

import pytest

from node.pipeline.outbox import SqlOutbox, gone_on_this_host
from node.storage.database import make_engine, migrate
from node.storage.exchange_repository import ExchangeRepository
from node.storage.unit_of_work import SqlUnitOfWorkFactory, UnitOfWorkFactory

NOW = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=60)


@pytest.fixture
def uow(database_url: str):
    migrate(database_url)
    engine = make_engine(database_url)
    factory = SqlUnitOfWorkFactory(engine)
    with factory(write=True) as work:
        work.exchange.add_outbox([{"batch_id": f"b{n}", "platform": "p", "queue": "q", "consumer_code": "c" * 18,
                                   "content_type": "application/json", "headers": {}, "body": b"x"}
                                  for n in range(10)], NOW)
        work.commit()
    yield factory
    engine.dispose()


def claim(uow: UnitOfWorkFactory, who: str, limit: int, now: dt.datetime = NOW) -> list[int]:
    with uow(write=True) as work:
        rows = work.exchange.claim(who, now, LEASE, limit)
        work.commit()
    return [row.id for row in rows]


def test_replicas_claim_different_rows_and_a_claimant_keeps_its_own(uow):
    first = claim(uow, "replica-a", 4)
    second = claim(uow, "replica-b", 4)
    assert len(first) == len(second) == 4 and not set(first) & set(second)
    assert set(claim(uow, "replica-a", 10)) == set(range(1, 11)) - set(second)  # its own again, after a reconnect
    with uow() as work:
        assert work.exchange.claims() == {"replica-a": 6, "replica-b": 4}


def test_the_rows_of_a_replica_that_died_go_to_another_when_its_claim_runs_out(uow):
    taken = claim(uow, "dead-replica", 10)
    assert claim(uow, "survivor", 10) == []
    later = NOW + LEASE + dt.timedelta(seconds=1)
    assert claim(uow, "survivor", 10, later) == taken


def test_confirmed_and_dead_rows_are_never_claimed_again(uow):
    with uow(write=True) as work:
        work.exchange.mark_confirmed([1, 2], NOW)
        work.exchange.mark_failed(3, 8, NOW, "nacked", dead=True)
        work.commit()
    assert 1 not in claim(uow, "a", 10) and {2, 3}.isdisjoint(claim(uow, "b", 10, NOW + 2 * LEASE))


def test_a_failed_row_is_free_for_any_replica_at_its_next_attempt(uow):
    [row] = claim(uow, "a", 1)
    with uow(write=True) as work:
        work.exchange.mark_failed(row, 1, NOW + dt.timedelta(seconds=1), "nacked", dead=False)
        work.commit()
    assert row in claim(uow, "b", 10, NOW + dt.timedelta(seconds=2))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_claims_at_the_same_moment_take_different_rows_on_postgresql(uow):
    """Replica A holds its claim transaction open (rows locked); B's claim skips those rows instead of
    waiting for them or taking them too."""
    engine = uow.engine
    holding = engine.connect()
    transaction = holding.begin()
    held = [m.id for m in ExchangeRepository(holding).claim("a", NOW, LEASE, 5)]
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.extend(claim(uow, "b", 10)))
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the second claim waited for the first one's locks"
    transaction.commit()
    holding.close()
    assert len(held) == 5 and len(result) == 5 and not set(held) & set(result)


def test_claims_of_a_dead_process_on_this_host_are_released_at_once(uow):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{socket.gethostname()}:{dead.stdout.strip()}:abcd1234"
    taken = claim(uow, gone, 10)
    assert gone_on_this_host(gone) and not gone_on_this_host(f"other-host:{dead.stdout.strip()}:x")
    outbox = SqlOutbox(uow, lambda: NOW)
    assert sorted(message.id for message in outbox.due(10, set())) == taken
