"""Whether the node's background workers live: the audit writer, the outbox dispatcher, the inbound
consumer, the catalog fanout publisher and uplink.

Why liveness looks at them: a request waits for its audit entry, and records wait for the dispatcher;
a worker thread that died (an unexpected error, a bug) or hangs (a database call that never returns)
leaves a node that answers health checks but nothing else. A dead or stuck required worker turns
``exnode.liveness`` NOT_SERVING, so an orchestrator restarts the node; ``exnode_worker_up`` shows which.

Each worker beats (``last_beat``, ``time.monotonic()``) on every turn of its loop, at least every few
seconds whatever it waits for (a broker that is down is waited for in short steps), so a beat older than
``server.worker_stall_s`` means stuck, not idle.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol


class Worker(Protocol):
    last_beat: float

    def running(self) -> bool:
        """Its thread (or process watch) is alive."""
        ...


def worker_up(worker: Worker, stall_s: float, now: float | None = None) -> bool:
    """Alive and beating within ``stall_s``."""
    now = time.monotonic() if now is None else now
    return worker.running() and now - worker.last_beat <= stall_s


def workers_up(workers: Mapping[str, Worker], stall_s: float) -> dict[str, bool]:
    now = time.monotonic()
    return {name: worker_up(worker, stall_s, now) for name, worker in workers.items()}
