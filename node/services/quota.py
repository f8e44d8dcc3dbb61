"""The verification grants' daily quota, counted in group commits.

Why not one transaction per verification: the count is a promise (the quota is the enumeration defence,
so it must hold across restarts and across replicas on one PostgreSQL), and a durable commit costs an
fsync; one per call capped verifications at the disk's commit rate. Callers that arrive while a commit is
running wait for the next one, which counts them all (leader/follower: the first waiting caller commits
for the others; no thread of its own). Each take still is one atomic statement, so the quota holds.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from node.storage.unit_of_work import UnitOfWorkFactory

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

    def take(self, grant_id: str, day: str, quota: int, mismatches: int = 0) -> int | None:
        """Count one verification (and its mismatches) of the grant on the day: the new count, committed;
        None when the quota was already used up (nothing counted)."""
        request = _Take(grant_id, day, quota, mismatches)
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
                        used = uow.verifications.take(request.grant_id, request.day, request.quota)
                        if used is not None:
                            uow.verifications.add_mismatches(request.grant_id, request.day, request.mismatches)
                        results.append(used)
                    uow.commit()
                self.commits += 1
                self.takes += len(group)
            except BaseException as error:
                for request in group:
                    request.result.set_exception(error)
                continue
            for request, used in zip(group, results, strict=True):
                request.result.set_result(used)
