"""The verification grants' daily quota, counted in group commits.

Why not one transaction per verification: the count is a promise (the quota is the enumeration defence,
so it must hold across restarts and across replicas on one PostgreSQL), and a durable commit costs an
fsync; one per call capped verifications at the disk's commit rate. Callers that arrive while a commit is
running wait for the next one, which counts them all (leader/follower: the first waiting caller commits
for the others; no thread of its own). Each take still is one atomic statement, so the quota holds.

A serving node gives the ledger its audit writer (``writer``): takes then ride in the audit trail's own
group commits, so a verification's quota and the other calls' audit entries share one commit (one fsync,
and on SQLite one write lock instead of two writers taking turns).

``then``: what must be committed with the count or not at all (the answer stored for a remote request, so
a redelivery after a crash between the two never counts twice; its audit entry; a verdict's pending
timestamp). It runs in the take's transaction, only when the take counted.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory

if TYPE_CHECKING:
    from node.services.audit import AuditWriter, WriteTask

MAX_GROUP = 256


@dataclass
class _Take:
    grant_id: str
    day: str
    quota: int
    mismatches: int
    then: Callable[[UnitOfWork, int], Any] | None = None
    result: Future[int | None] = field(default_factory=Future)


class QuotaLedger:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow
        self._lock = threading.Lock()
        self._pending: list[_Take] = []
        self._leading = False
        self.commits = 0
        self.takes = 0
        self.writer: AuditWriter | None = None
        self._last_batch = 0

    def take(self, grant_id: str, day: str, quota: int, mismatches: int = 0,
             then: Callable[[UnitOfWork, int], Any] | None = None) -> int | None:
        """Count one verification (and its mismatches) of the grant on the day: the new count, committed
        together with what ``then`` wrote; None when the quota was already used up (nothing counted, ``then``
        not run)."""
        request = _Take(grant_id, day, quota, mismatches, then)
        writer = self.writer
        if writer is not None and writer.running():
            from node.services.audit import WriteTask

            used, batch = writer.submit_task(WriteTask(lambda uow: _apply(uow, request), _apply_together,
                                                       request)).result()
            self._counted(batch)
            return used
        with self._lock:
            self._pending.append(request)
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        return request.result.result()

    async def take_async(self, grant_id: str, day: str, quota: int, mismatches: int = 0,
                         then: Callable[[UnitOfWork, int], Any] | None = None) -> int | None:
        """``take`` for a caller on an event loop: it waits for the writer's commit on a loop future (settled in
        bulk with the batch's audit entries), holding no thread. Without a running writer, ``take`` in a
        thread."""
        writer = self.writer
        if writer is None or not writer.running():
            return await asyncio.to_thread(self.take, grant_id, day, quota, mismatches, then)
        from node.services.audit import WriteTask

        request = _Take(grant_id, day, quota, mismatches, then)
        used, batch = await writer.submit_task_async(WriteTask(lambda uow: _apply(uow, request), _apply_together,
                                                               request))
        self._counted(batch)
        return used

    def _counted(self, batch: int) -> None:
        with self._lock:
            self.takes += 1
            if batch != self._last_batch:
                self._last_batch = batch
                self.commits += 1

    def _lead(self) -> None:
        while True:
            with self._lock:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                if not group:
                    self._leading = False
                    return
            try:
                results = []
                with self.uow(write=True) as uow:
                    for request in group:
                        results.append(_apply(uow, request))
                    uow.commit()
                self.commits += 1
                self.takes += len(group)
            except BaseException as error:
                for request in group:
                    request.result.set_exception(error)
                continue
            for request, used in zip(group, results, strict=True):
                request.result.set_result(used)


def _apply_together(uow: UnitOfWork, tasks: Sequence[WriteTask]) -> list[int | None]:
    """A batch's takes: those of one grant and day counted by one statement when the quota has room for all
    of them (each then gets its own count, in order), else one by one exactly as alone."""
    requests: list[_Take] = [task.payload for task in tasks]
    results: list[int | None] = [None] * len(requests)
    groups: dict[tuple[str, str, int], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault((request.grant_id, request.day, request.quota), []).append(index)
    for (grant_id, day, quota), indexes in groups.items():
        used = None
        if len(indexes) > 1:
            used = uow.verifications.take_many(grant_id, day, quota, len(indexes),
                                               sum(requests[i].mismatches for i in indexes))
        if used is None:
            for index in indexes:
                results[index] = _apply(uow, requests[index])
            continue
        for offset, index in enumerate(indexes):
            count = used - len(indexes) + 1 + offset
            results[index] = count
            if requests[index].then is not None:
                requests[index].then(uow, count)
    return results


def _apply(uow: UnitOfWork, request: _Take) -> int | None:
    used = uow.verifications.take_counting(request.grant_id, request.day, request.quota, request.mismatches)
    if used is not None and request.then is not None:
        request.then(uow, used)
    return used
