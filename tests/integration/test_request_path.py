"""The request path's shared commits on the real databases: entries settled on an event loop in bulk, writes
riding in the audit writer's transaction, SQLite's in-process writer lock, and interceptors' handler cache."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from sqlalchemy import select

from node.grpc.handlers import WrappedHandlers, wrap_handler
from node.services.audit import AuditUnavailable, WriteTask
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
