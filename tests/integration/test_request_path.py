"""The request path's shared commits on the real databases: entries settled on an event loop in bulk, writes
riding in the audit writer's transaction, SQLite's in-process writer lock, and interceptors' handler cache."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import grpc
import pytest
from sqlalchemy import select

from node.grpc.handlers import WrappedHandlers, wrap_handler
from node.services.audit import AuditUnavailable, AuditWriter, WriteTask
from node.storage.database import sqlite_write_lock
from node.storage.tables import audit_entries, verification_usage
from tests.integration import test_audit_storage
from tests.integration.test_audit_storage import Trail, record

trail = test_audit_storage.trail  # the audit trail on each database, as its own tests build it


def test_loop_callers_get_their_sequences_and_a_cancelled_waiter_still_leaves_its_entry(trail: Trail):
    trail.writer.start()

    async def calls() -> list[int]:
        abandoned = trail.writer.submit_async(record(0, trail.clock(), request_id="req-abandoned"))
        waiter = asyncio.ensure_future(asyncio.shield(abandoned))
        waiter.cancel()  # the caller gives up: the entry stays queued and is committed like the others
        futures = [trail.writer.submit_async(record(n, trail.clock())) for n in range(1, 21)]
        sequences = list(await asyncio.gather(*futures))
        await abandoned
        return sequences

    sequences = asyncio.run(calls())
    assert sorted(sequences) == list(range(2, 22))
    stored = trail.entries()
    assert [e.record.request_id for e in stored][0] == "req-abandoned"
    assert len(stored) == 21 and trail.verify().ok


def test_what_a_loop_submits_in_one_turn_commits_in_one_batch_and_a_cancelled_wait_leaves_its_entry(trail: Trail):
    trail.writer.start()

    async def calls() -> list[int]:
        waiting = asyncio.ensure_future(trail.writer.submit_async(record(0, trail.clock(), request_id="req-gone")))
        futures = [trail.writer.submit_async(record(n, trail.clock())) for n in range(1, 31)]
        await asyncio.sleep(0)
        waiting.cancel()  # the interceptor awaits its future unshielded: a cancel ends the wait, not the entry
        return list(await asyncio.gather(*futures))

    batches = trail.writer.batches
    assert asyncio.run(calls()) == list(range(2, 32))
    assert trail.writer.batches == batches + 1  # one queue item per loop turn: one commit for all 31
    stored = trail.entries()
    assert [e.record.request_id for e in stored][0] == "req-gone"
    assert len(stored) == 31 and trail.verify().ok


def test_a_batch_larger_than_one_insert_statement_is_stored_whole_in_order(trail: Trail):
    written = trail.writer.append([record(n, trail.clock()) for n in range(1, 151)])  # 64 + 64 + 22 rows
    assert [e.sequence for e in written] == list(range(1, 151))
    assert [(e.sequence, e.record, e.entry_hash) for e in trail.entries()] == \
        [(e.sequence, e.record, e.entry_hash) for e in written]
    assert trail.verify().ok


def test_entries_buffered_on_a_loop_when_the_writer_stops_fail_instead_of_hanging(trail: Trail):
    trail.writer.start()

    async def call() -> None:
        future = trail.writer.submit_async(record(1, trail.clock()))
        trail.writer.stop()  # before the loop's turn ends: the buffered entry finds no writer to take it
        await asyncio.wait_for(future, 10)

    with pytest.raises(AuditUnavailable, match="not running"):
        asyncio.run(call())


def test_concurrent_callers_share_a_commit_window_and_a_lone_caller_never_waits_for_it(trail: Trail):
    window = 0.5
    writer = AuditWriter(trail.uow, trail.keys.active, replace(trail.settings, batch_window_s=window), trail.clock)
    writer.start()

    async def calls() -> tuple[int, int, float]:
        await writer.submit_async(record(1, trail.clock()))  # one caller alone: a batch of one
        started = time.monotonic()
        await writer.submit_async(record(2, trail.clock()))  # ...so the next one commits at once
        alone = time.monotonic() - started
        await asyncio.gather(*(writer.submit_async(record(n, trail.clock())) for n in range(3, 6)))  # concurrent
        before = writer.batches
        first = writer.submit_async(record(6, trail.clock()))
        await asyncio.sleep(0.05)  # within the window the writer now waits: later entries join the commit
        later = [writer.submit_async(record(n, trail.clock())) for n in range(7, 10)]
        await asyncio.gather(first, *later)
        return before, writer.batches, alone

    try:
        before, after, alone = asyncio.run(calls())
    finally:
        writer.stop()
    assert alone < window
    assert after == before + 1  # entries 6-9, submitted 50 ms apart, committed together
    assert len(trail.entries()) == 9 and trail.verify().ok


def test_a_stopped_writer_refuses_loop_callers_at_once(trail: Trail):
    async def call() -> None:
        await trail.writer.submit_async(record(1, trail.clock()))

    with pytest.raises(AuditUnavailable, match="not running"):
        asyncio.run(call())


def test_write_tasks_commit_with_the_entries_beside_them_and_their_errors_go_to_their_caller(trail: Trail):
    trail.writer.start()
    take = WriteTask(lambda uow: uow.verifications.take_counting("SQ-T", "2026-12-01", 3, 1))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: trail.writer.submit_task(take).result(timeout=60)[0], range(6)))
    assert sorted(r for r in results if r is not None) == [1, 2, 3]
    assert results.count(None) == 3  # the quota held: three refused, nothing counted for them
    with trail.engine.connect() as connection:
        row = connection.execute(select(verification_usage.c.verifications, verification_usage.c.mismatches)
                                 .where(verification_usage.c.grant_id == "SQ-T")).one()
    assert tuple(row) == (3, 3)  # mismatches counted only with the verifications that were counted

    def broken(uow: object) -> None:
        raise ValueError("a bug in the task")

    failing = trail.writer.submit_task(WriteTask(broken))
    with pytest.raises(ValueError, match="a bug in the task"):
        failing.result(timeout=60)
    assert trail.writer.submit(record(1, trail.clock())).result(timeout=60) >= 1  # the writer goes on


def test_sqlite_write_lock_is_released_when_a_write_fails(trail: Trail):
    lock = sqlite_write_lock(trail.engine)
    if trail.engine.dialect.name != "sqlite":
        assert lock is None  # PostgreSQL's writers do not queue in the process
        return
    assert lock is not None
    with pytest.raises(RuntimeError), trail.uow(write=True) as uow:
        uow.connection.execute(select(audit_entries.c.sequence)).all()
        raise RuntimeError("the use case failed")
    taken = threading.Event()

    def other_thread() -> None:
        if lock.acquire(timeout=5):
            taken.set()
            lock.release()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    assert taken.is_set(), "a failed write kept the process's SQLite write lock"


def test_wrapped_handlers_are_built_once_per_method_and_again_when_the_inner_handler_changes():
    async def behaviour(request: bytes, context: object) -> bytes:
        return request

    built: list[str] = []

    def build(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        built.append("x")
        return wrap_handler(handler, lambda b: b, lambda b: b)

    cache = WrappedHandlers()
    inner = grpc.unary_unary_rpc_method_handler(behaviour)
    first = cache.get("/a.S/M", inner, build)
    assert cache.get("/a.S/M", inner, build) is first and len(built) == 1
    assert cache.get("/a.S/Unknown", None, build) is None and len(built) == 1
    other = grpc.unary_unary_rpc_method_handler(behaviour)
    assert cache.get("/a.S/M", other, build) is not first and len(built) == 2


def _usage(trail: Trail, grant_id: str) -> tuple[int, int]:
    with trail.engine.connect() as connection:
        row = connection.execute(select(verification_usage.c.verifications, verification_usage.c.mismatches)
                                 .where(verification_usage.c.grant_id == grant_id)).one()
    return row[0], row[1]


def test_loop_takes_are_exact_commit_with_their_entries_and_hold_the_quota(trail: Trail):
    """``QuotaLedger.take_async`` (VerifyClaim on the event loop): concurrent takes of one grant get distinct
    counts, never past the quota, each with what ``then`` wrote in the same commit; refused ones write
    nothing."""
    from node.services.quota import QuotaLedger

    ledger = QuotaLedger(trail.uow)
    ledger.writer = trail.writer
    trail.writer.start()

    def then(n: int) -> object:
        return lambda uow, used: trail.writer.join_batch(uow, [record(n, trail.clock(), request_id=f"req-take-{n}")])

    async def calls() -> list[int | None]:
        return list(await asyncio.gather(*(ledger.take_async("SQ-L", "2026-12-01", 25, n % 2, then(n))
                                           for n in range(40))))

    results = asyncio.run(calls())
    counted = sorted(r for r in results if r is not None)
    assert counted == list(range(1, 26)) and results.count(None) == 15
    assert _usage(trail, "SQ-L")[0] == 25
    ids = {e.record.request_id for e in trail.entries()}
    taken = {f"req-take-{n}" for n, r in enumerate(results) if r is not None}
    assert taken <= ids and not ({f"req-take-{n}" for n in range(40)} - taken) & ids
    assert trail.verify().ok
    assert ledger.takes == 40 and 1 <= ledger.commits <= 40


def test_loop_take_errors_reach_their_caller_and_without_a_writer_a_thread_counts(trail: Trail):
    from node.services.quota import QuotaLedger

    ledger = QuotaLedger(trail.uow)
    ledger.writer = trail.writer
    trail.writer.start()

    def broken(uow: object, used: int) -> None:
        raise ValueError("a bug in what commits with the count")

    with pytest.raises(ValueError, match="a bug in what commits"):
        asyncio.run(ledger.take_async("SQ-E", "2026-12-01", 5, 0, broken))
    assert trail.writer.submit(record(1, trail.clock())).result(timeout=60) >= 1  # the writer goes on
    trail.writer.stop()
    alone = QuotaLedger(trail.uow)  # no writer (a tool, a test): its own group commits, in a thread
    assert asyncio.run(alone.take_async("SQ-E", "2026-12-01", 5, 1)) == 1
    assert _usage(trail, "SQ-E") == (1, 1)  # the failed take's transaction counted nothing
