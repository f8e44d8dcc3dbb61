"""The outbox as the dispatcher sees it, over the node's database; and what a confirm means for the
lists: a batch that reached a consumer's queue is a delivery to that consumer (销账 of its demand)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from adapters.rabbit import OutboxPort, Outgoing, backoff
from node.services.lists import ListsApplication
from node.storage.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)


class SqlOutbox(OutboxPort):
    def __init__(self, uow: UnitOfWorkFactory, clock: Callable[[], dt.datetime],
                 lists: ListsApplication | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.lists = lists
        self._known: dict[int, Outgoing] = {}

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        with self.uow() as uow:
            rows = uow.exchange.due(self.clock(), limit, exclude)
        out = [Outgoing(r.id, r.queue, r.body, r.content_type, r.headers, f"{r.batch_id}:{r.platform}", r.attempts)
               for r in rows]
        self._known.update((m.id, m) for m in out)
        return out

    def confirmed(self, ids: Sequence[int]) -> None:
        now = self.clock()
        with self.uow(write=True) as uow:
            uow.exchange.mark_confirmed(ids, now)
            uow.commit()
        for message_id in ids:
            message = self._known.pop(message_id, None)
            if message is None or self.lists is None:
                continue
            h = message.headers
            records = int(h.get("x-exnode-record-count", "0") or 0)
            try:
                self.lists.record_delivery(h["x-exnode-provider"], h["x-exnode-resource"], h["x-exnode-consumer"],
                                           h["x-exnode-batch-id"], records, now)
            except Exception:
                log.exception("recording the delivery of %s failed", message.message_id)

    def failed(self, message: Outgoing, error: str, *, dead: bool) -> None:
        now = self.clock()
        with self.uow(write=True) as uow:
            uow.exchange.mark_failed(message.id, message.attempts + 1, backoff(message.attempts + 1, now), error,
                                     dead=dead)
            uow.commit()
        self._known.pop(message.id, None)
