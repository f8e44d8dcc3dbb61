"""The verification grants' daily quota, counted in group commits.

Why not one transaction per verification: the count is a promise (the quota is the enumeration defence,
so it must hold across restarts and across replicas on one PostgreSQL), and a durable commit costs an
fsync; one per call capped verifications at the disk's commit rate. Callers that arrive while a commit is
running wait for the next one, which counts them all (leader/follower: the first waiting caller commits
for the others; no thread of its own). Each take still is one atomic statement, so the quota holds.

A serving node gives the ledger its audit writer (``writer``): takes then ride in the audit trail's own
group commits, so a verification's quota and the other calls' audit entries share one commit (one fsync,
and on SQLite one write lock instead of two writers taking turns).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory

if TYPE_CHECKING:
    from node.services.audit import AuditWriter

MAX_GROUP = 256


@dataclass
class _Take:
    grant_id: str
    day: str
    quota: int
    mismatches: int
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

    def take(self, grant_id: str, day: str, quota: int, mismatches: int = 0) -> int | None:
        """Count one verification (and its mismatches) of the grant on the day: the new count, committed;
        None when the quota was already used up (nothing counted)."""
        request = _Take(grant_id, day, quota, mismatches)
        writer = self.writer
        if writer is not None and writer.running():
            from node.services.audit import WriteTask

            used, batch = writer.submit_task(WriteTask(lambda uow: _apply(uow, request))).result()
            with self._lock:
                self.takes += 1
                if batch != self._last_batch:
                    self._last_batch = batch
                    self.commits += 1
            return used
        with self._lock:
            self._pending.append(request)
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        return request.result.result()

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


def _apply(uow: UnitOfWork, request: _Take) -> int | None:
    return uow.verifications.take_counting(request.grant_id, request.day, request.quota, request.mismatches)
