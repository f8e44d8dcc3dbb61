"""The outbox as the dispatcher sees it, over the node's database; and what a confirm means for the
lists: a batch that reached a consumer's queue is a delivery to that consumer (销账 of its demand)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence

from adapters.rabbit import OutboxPort, Outgoing
from node.services.lists import ListsApplication, record_deliveries
from node.storage.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)


def claimant_id() -> str:
    """This dispatcher among the node's replicas: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def gone_on_this_host(claimant: str) -> bool:
    """Whether a claimant ran on this host in a process that no longer exists (a replica killed and
    restarted here need not wait out its predecessor's lease). Other hosts' claims run out by lease."""
    host, _, rest = claimant.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def backoff(attempts: int, now: dt.datetime) -> dt.datetime:
    """When a nacked message is tried again: 1 s, 2 s, 4 s … up to 5 minutes."""
    return now + dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


class SqlOutbox(OutboxPort):
    """Claims due rows before handing them to the dispatcher, so replicas of one node sharing the
    database each publish different rows; a replica that dies leaves its claims to run out.

    ``claims=False`` (the embedded SQLite database, which one node process uses): due rows are read, not
    claimed; a claim would cost a write transaction with an fsync per poll for nobody's benefit."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Callable[[], dt.datetime],
                 lists: ListsApplication | None = None, *, claimant: str | None = None,
                 lease: dt.timedelta = dt.timedelta(seconds=60), claims: bool = True) -> None:
        self.uow = uow
        self.clock = clock
        self.lists = lists
        self.claims = claims
        self.claimant = claimant or claimant_id()
        self.lease = lease
        self._known: dict[int, Outgoing] = {}
        self._released_at: dt.datetime | None = None

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        now = self.clock()
        if not self.claims:
            with self.uow() as uow:
                rows = uow.exchange.due(now, limit, exclude)
        else:
            if self._released_at is None or now - self._released_at >= self.lease / 2:
                self._release_dead_claims(now)
            with self.uow() as uow:  # a read first: an idle node takes no write lock every poll
                if not uow.exchange.any_due(now, exclude):
                    return []
            with self.uow(write=True) as uow:
                rows = uow.exchange.claim(self.claimant, now, self.lease, limit, exclude)
                uow.commit()
        out = [Outgoing(r.id, r.queue, r.body, r.content_type, r.headers, f"{r.batch_id}:{r.platform}", r.attempts)
               for r in rows]
        self._known.update((m.id, m) for m in out)
        return out

    def _release_dead_claims(self, now: dt.datetime) -> None:
        self._released_at = now
        with self.uow() as uow:
            gone = [c for c in uow.exchange.live_claimants(now) if c != self.claimant and gone_on_this_host(c)]
        if gone:
            with self.uow(write=True) as uow:
                released = uow.exchange.release_claims(gone)
                uow.commit()
            log.info("took over %d outbox rows of dispatchers that are gone: %s", released, ", ".join(gone))

    def confirmed(self, ids: Sequence[int]) -> None:
        """Mark the rows confirmed and record their deliveries in ONE transaction per flush.

        Why: this runs in the dispatcher's ioloop, which publishes nothing while it waits; one write
        transaction (BEGIN IMMEDIATE, a commit with fsync) per confirmed message also queued behind every
        ingest for the SQLite write lock. If recording the deliveries fails, the rows are still marked
        (their messages did reach the broker) and each delivery is tried on its own, as before.
        """
        now = self.clock()
        messages = [m for m in (self._known.pop(i, None) for i in ids) if m is not None]
        deliveries = [_delivery(m) for m in messages] if self.lists is not None else []
        try:
            with self.uow(write=True) as uow:
                uow.exchange.mark_confirmed(ids, now)
                record_deliveries(uow, deliveries, now)
                uow.commit()
            return
        except Exception:
            if not deliveries:
                raise
            log.exception("recording %d deliveries with their confirms failed; one at a time", len(deliveries))
        with self.uow(write=True) as uow:
            uow.exchange.mark_confirmed(ids, now)
            uow.commit()
        assert self.lists is not None
        for (provider, resource, consumer, batch_id, records), message in zip(deliveries, messages, strict=True):
            try:
                self.lists.record_delivery(provider, resource, consumer, batch_id, records, now)
            except Exception:
                log.exception("recording the delivery of %s failed", message.message_id)

    def failed(self, message: Outgoing, error: str, *, dead: bool) -> None:
        now = self.clock()
        with self.uow(write=True) as uow:
            uow.exchange.mark_failed(message.id, message.attempts + 1, backoff(message.attempts + 1, now), error,
                                     dead=dead)
            uow.commit()
        self._known.pop(message.id, None)


def _delivery(message: Outgoing) -> tuple[str, str, str, str, int]:
    h = message.headers
    records = int(h.get("x-exnode-record-count", "0") or 0)
    return h["x-exnode-provider"], h["x-exnode-resource"], h["x-exnode-consumer"], h["x-exnode-batch-id"], records

