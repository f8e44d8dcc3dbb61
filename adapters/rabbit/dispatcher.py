"""The outbox dispatcher: publisher confirms in a window, persistent messages, dead letters with a reason.

Why a ``SelectConnection`` (``IoloopWorker``): a BlockingChannel in confirm mode waits one round trip per
message (0.5-0.9 k msg/s here, DESIGN.md §12); keeping up to ``window`` messages unconfirmed and matching
the broker's acks by delivery tag reaches the broker's own rate. The ioloop also keeps heartbeats going:
database work done in it is one short query per tick.

One outbox row is one batch for one platform; it holds one message per record (``wire.pack``), each a
one-record envelope with its inclusion proof, published with the row's headers plus ``x-exnode-record-id``.

Nothing is lost: a row leaves PENDING only when the broker confirmed every one of its messages (or after
``max_attempts`` nacked attempts, when its messages are dead-lettered with the reason). A dropped connection
leaves the unconfirmed rows PENDING; they are published again after reconnecting, so delivery is
at-least-once and consumers deduplicate by record id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from adapters.rabbit.topology import QUORUM, names, queue_arguments
from adapters.rabbit.wire import ROW_HEADERS, GatheringConnection, RowProperties, unpack
from adapters.rabbit.worker import IoloopWorker, WorkerStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One outbox row to publish: ``body`` is ``pack``ed, one message per record."""

    id: int
    queue: str
    body: bytes
    content_type: str
    headers: dict[str, str]
    message_id: str
    attempts: int


@dataclass
class DispatcherStats(WorkerStats):
    published: int = 0
    confirmed: int = 0
    nacked: int = 0
    dead_lettered: int = 0


@dataclass
class _Row:
    """An outbox row whose messages are on the wire: confirmed when ``remaining`` reaches 0."""

    message: Outgoing
    parts: list[tuple[str, bytes]]
    remaining: int
    nacked: bool = False


class OutboxPort:
    """What the dispatcher needs of the database; the node's pipeline implements it over the outbox table."""

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        raise NotImplementedError

    def confirmed(self, ids: Sequence[int]) -> None:
        raise NotImplementedError

    def failed(self, message: Outgoing, error: str, *, dead: bool) -> None:
        raise NotImplementedError


class Dispatcher(IoloopWorker):
    """Drains the outbox to RabbitMQ on its own thread until ``stop``."""

    connection_class = GatheringConnection

    def __init__(self, url: str | Sequence[str], node_id: str, outbox: OutboxPort, *, window: int = 1000,
                 max_attempts: int = 8, poll_s: float = 0.05, stats: DispatcherStats | None = None,
                 **kwargs: Any) -> None:
        super().__init__("dispatcher", url, stats=stats or DispatcherStats(), **kwargs)
        self.node_id = node_id
        self.outbox = outbox
        self.window = window
        """Unconfirmed messages (records) kept on the wire; whole rows are published, so it may be exceeded
        by one row."""
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self.stats: DispatcherStats
        self._channel: Channel | None = None
        self._inflight: dict[int, int] = {}
        """Delivery tag → outbox row id."""
        self._rows: dict[int, _Row] = {}
        self._row_size = 1
        self._next_tag = 0
        self._declared: set[str] = set()
        self._acked: list[int] = []
        self._timer: Any = None
        """The pending poll: only a waiting pump is woken early, so there is never more than one pump chain."""
        self._confirmer: threading.Thread | None = None
        self._to_confirm: SimpleQueue = SimpleQueue()
        self._confirming: set[int] = set()
        """Rows whose messages are all confirmed, being marked so in the database: not due again meanwhile."""
        self._confirming_lock = threading.Lock()

    # -- lifetime ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._confirmer = threading.Thread(target=self._confirm_loop, name="outbox-confirmer", daemon=True)
        self._confirmer.start()
        super().start()

    def running(self) -> bool:
        """Both threads live (``last_beat`` tells a stuck loop)."""
        return super().running() and self._confirmer is not None and self._confirmer.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._reset()
        if self._confirmer is not None:  # after the loop: its last confirms are queued by then
            self._to_confirm.put(None)
            self._confirmer.join(timeout)
            self._confirmer = None

    def close_connection(self) -> None:
        self._flush_acked()
        super().close_connection()

    def on_session_end(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Unconfirmed messages stay PENDING in the outbox; they are published again after reconnecting."""
        self._flush_acked()
        self._inflight.clear()
        self._rows.clear()
        self._declared.clear()
        self._timer = None
        self._channel = None
        self._next_tag = 0

    # -- the channel ------------------------------------------------------------------------------------
    def on_connection_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        n = names(self.node_id)

        def declared_dlq(_frame: Any) -> None:
            channel.queue_bind(n["dlq"], n["dlx"], callback=lambda _f: self._ready(channel))

        def declared_dlx(_frame: Any) -> None:
            channel.queue_declare(n["dlq"], durable=True, arguments=QUORUM, callback=declared_dlq)

        channel.exchange_declare(n["dlx"], exchange_type="fanout", durable=True, callback=declared_dlx)

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        """A closed channel (a broker error) ends the connection; the worker reconnects."""
        if self.connection is not None and self.connection.is_open:
            self._failure = reason
            self.connection.close()

    def _ready(self, channel: Channel) -> None:
        channel.confirm_delivery(self._on_confirm)
        self.connected()
        self._schedule(0)

    # -- publishing -------------------------------------------------------------------------------------
    def wake(self) -> None:
        """New outbox rows were committed: publish them now rather than at the next poll (any thread). Without
        a loop (connecting) nothing is lost: the next connection polls the outbox anyway."""
        self.call_threadsafe(self._woken)

    def _woken(self) -> None:
        timer, self._timer = self._timer, None
        if timer is None or self.connection is None:
            return  # a pump is running or declaring queues: it reads the outbox again when it is done
        self.connection.ioloop.remove_timeout(timer)
        self._pump()

    def _schedule(self, delay: float) -> None:
        if self.connection is not None and not self.stopping:
            self._timer = self.connection.ioloop.call_later(delay, self._pump)

    def _pump(self) -> None:
        self._timer = None
        channel = self._channel
        if channel is None or not channel.is_open or self.stopping:
            return
        try:
            self._flush_acked()
            room = self.window - len(self._inflight)
            rows = max(1, room // self._row_size)
            with self._confirming_lock:
                busy = set(self._rows) | self._confirming
            batch = self.outbox.due(rows, busy) if room > 0 else []
        except Exception as error:
            log.error("outbox read failed: %s: %s", type(error).__name__, error)
            if self.on_error:
                self.on_error(error)
            self._schedule(1.0)
            return
        undeclared = sorted({m.queue for m in batch} - self._declared)
        if undeclared:
            self._declare(channel, undeclared, batch)
            return
        for message in batch:
            self._publish(channel, message)
        self._schedule(0 if batch and len(batch) == rows else self.poll_s)

    def _declare(self, channel: Channel, queues: list[str], batch: list[Outgoing]) -> None:
        queue = queues[0]

        def done(_frame: Any) -> None:
            self._declared.add(queue)
            if len(queues) > 1:
                self._declare(channel, queues[1:], batch)
            else:
                for message in batch:
                    self._publish(channel, message)
                self._schedule(0)

        channel.queue_declare(queue, durable=True, arguments=queue_arguments(self.node_id), callback=done)

    def _dead_letter_properties(self, message: Outgoing, record_id: str, headers: dict[str, str]
                                ) -> pika.BasicProperties:
        """A dead letter carries every header of its row and the reason (record messages: RowProperties)."""
        return pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type=message.content_type,
            headers={**headers, "x-exnode-record-id": record_id},
            message_id=f"{message.message_id}:{record_id}", app_id=f"exnode:{self.node_id}")

    def _publish(self, channel: Channel, message: Outgoing) -> None:
        try:
            parts = unpack(message.body)
        except ValueError as error:
            self._rows[message.id] = _Row(message, [], 0, nacked=True)
            self._finished(message.id, str(error), dead=True)
            return
        row = self._rows[message.id] = _Row(message, parts, len(parts))
        self._row_size = max(1, len(parts))
        connection = self.connection
        properties = RowProperties(message.content_type,
                                   {k: v for k, v in message.headers.items() if k not in ROW_HEADERS},
                                   message.message_id, f"exnode:{self.node_id}")
        with connection.gathered() if isinstance(connection, GatheringConnection) else nullcontext():
            for record_id, body in parts:
                channel.basic_publish("", message.queue, body, properties.for_record(record_id))
                self._next_tag += 1
                self._inflight[self._next_tag] = message.id
        self.stats.published += len(parts)
        if not parts:
            self._finished(row.message.id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        tags = [t for t in self._inflight if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            row_id = self._inflight.pop(tag, None)
            row = self._rows.get(row_id) if row_id is not None else None
            if row is None:
                continue
            if acked:
                self.stats.confirmed += 1
            else:
                self.stats.nacked += 1
                row.nacked = True
            row.remaining -= 1
            if row.remaining == 0:
                self._finished(row.message.id)

    def _finished(self, row_id: int, problem: str = "", *, dead: bool = False) -> None:
        """Every message of the row has its confirm: the row is confirmed, retried or dead-lettered."""
        row = self._rows.pop(row_id)
        if not row.nacked:
            self._acked.append(row_id)
            return
        message = row.message
        dead = dead or message.attempts + 1 >= self.max_attempts
        reason = problem or f"broker nacked the message {message.attempts + 1} times"
        if dead and self._channel is not None and self._channel.is_open:
            headers = {**message.headers, "x-exnode-dead-letter-reason": reason, "x-exnode-queue": message.queue}
            for record_id, body in row.parts or [("", message.body)]:
                self._channel.basic_publish(names(self.node_id)["dlx"], "", body,
                                            self._dead_letter_properties(message, record_id, headers))
                self._next_tag += 1  # the dead letter's own confirm is not tracked
                self.stats.dead_lettered += 1
        try:
            self.outbox.failed(message, reason, dead=dead)
        except Exception as error:
            log.error("outbox update failed: %s: %s", type(error).__name__, error)

    def _flush_acked(self) -> None:
        """Hand the rows confirmed since the last pump to the confirmer thread. Why a thread: marking them
        is a write transaction, and on SQLite a writer waits for the ingest's commit; the loop meanwhile
        keeps publishing and reading confirms. Without a confirmer (unit tests) the rows are marked here."""
        if not self._acked:
            return
        ids, self._acked = self._acked, []
        if self._confirmer is None:
            self._confirm(ids)
            return
        with self._confirming_lock:
            self._confirming.update(ids)
        self._to_confirm.put(ids)

    def _confirm_loop(self) -> None:
        done = False
        while not done:
            ids = self._to_confirm.get()
            if ids is None:
                break
            while True:  # everything queued meanwhile goes in the same transaction
                try:
                    more = self._to_confirm.get_nowait()
                except Empty:
                    break
                if more is None:
                    done = True
                    break
                ids = ids + more
            self._confirm(ids)
            with self._confirming_lock:
                self._confirming.difference_update(ids)

    def _confirm(self, ids: list[int]) -> None:
        """If marking fails the rows stay PENDING and are published again: at least once, never lost."""
        try:
            self.outbox.confirmed(ids)
        except Exception as error:
            log.error("marking %d confirmed outbox rows failed (they are sent again): %s: %s", len(ids),
                      type(error).__name__, error)
