"""The catalog feed on RabbitMQ: published and retired catalog events on the node's durable fanout exchange
``exnode.<node>.catalog``, for departments that prefer binding a queue to following a gRPC stream.

Published like the outbox, with a window of unconfirmed messages (an import publishes thousands of
entries at once; one confirm round trip per message ran at ~1,100 msg/s). The source's cursor moves only
past messages the broker confirmed, in feed order (a confirm for a later message does not move it past an
earlier one still unconfirmed); after a nack, a dropped connection or a restart the unconfirmed ones are
published again, so delivery is at-least-once: every message carries its feed position in the
``x-exnode-position`` header (and as message id), and consumers deduplicate by it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import operator
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pika
from pika import spec
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from adapters.rabbit.topology import names
from adapters.rabbit.wire import GatheringConnection
from adapters.rabbit.worker import IoloopWorker, WorkerStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutMessage:
    position: int
    body: bytes
    headers: dict[str, object]


@dataclass(frozen=True)
class FanoutBatch:
    messages: list[FanoutMessage]
    scanned_to: int
    """Confirming this position also skips the events the source left out (drafts)."""
    full: bool


class FanoutSource(Protocol):
    """What the publisher needs of the node: the events to publish, and where to record confirms."""

    def cursor(self) -> int:
        """The confirmed position: everything up to it reached the broker."""
        ...

    def pending(self, limit: int, after: int) -> FanoutBatch:
        """Up to ``limit`` public events after ``after``."""
        ...

    def confirmed(self, position: int) -> None: ...


@dataclass
class FanoutStats(WorkerStats):
    published: int = 0
    confirmed: int = 0
    nacked: int = 0


_SHORT = struct.Struct(">B")
_LONG = struct.Struct(">I")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_OTHER_FIELDS = ("content_encoding", "priority", "correlation_id", "reply_to", "expiration", "timestamp", "type",
                 "user_id", "cluster_id")
_others = operator.attrgetter(*_OTHER_FIELDS)
_FLAGS = (spec.BasicProperties.FLAG_CONTENT_TYPE | spec.BasicProperties.FLAG_HEADERS
          | spec.BasicProperties.FLAG_DELIVERY_MODE | spec.BasicProperties.FLAG_MESSAGE_ID
          | spec.BasicProperties.FLAG_APP_ID)


def _short_string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string of {len(raw)} bytes: {text[:40]!r}…")
    return _SHORT.pack(len(raw)) + raw


_FLAGS_BYTES = struct.pack(">H", _FLAGS & 0xFFFE)


@functools.lru_cache(maxsize=256)
def _constant(text: str) -> bytes:
    """``_short_string`` of what every message repeats (header names, content type, app id), encoded once."""
    return _short_string(text)


class FanoutProperties(pika.BasicProperties):
    """The fanout message's properties, encoded as pika encodes them (the same bytes) but without its
    generic per-field machinery: with five headers that was a third of the publisher's time per message
    (``exnode bench fanout`` against a raw publisher of one header). Anything but the fanout's own
    fields (str and int headers) is left to pika."""

    def encode(self) -> list[bytes]:
        headers = self.headers
        if (self.content_type is None or self.delivery_mode is None or self.message_id is None
                or self.app_id is None or not headers or _others(self).count(None) != len(_OTHER_FIELDS)):
            return super().encode()
        table = []
        for key, value in headers.items():
            if isinstance(value, str):
                raw = value.encode()
                table += (_constant(key), b"S", _LONG.pack(len(raw)), raw)
            elif isinstance(value, int) and not isinstance(value, bool):
                small = -(1 << 31) <= value < 1 << 31  # pika's choice: a 32-bit I when it fits, else a 64-bit l
                table += (_constant(key), b"I" if small else b"l", (_INT32 if small else _INT64).pack(value))
            else:
                return super().encode()
        encoded = b"".join(table)
        return [_FLAGS_BYTES, _constant(self.content_type), _LONG.pack(len(encoded)),
                encoded, _SHORT.pack(self.delivery_mode), _short_string(self.message_id), _constant(self.app_id)]


RECORD_EVERY_S = 0.25
"""How often, at most, the confirmed cursor is stored while messages are in flight."""


class CatalogFanoutPublisher(IoloopWorker):
    """Publishes the source's events to ``exnode.<node>.catalog`` on its own thread until ``stop``. A batch's
    frames go to the socket in one write (``GatheringConnection``): pika's one ``send`` per frame, three per
    message, was the publisher's largest cost in ``exnode bench fanout``."""

    connection_class = GatheringConnection

    def __init__(self, url: str | Sequence[str], node_id: str, source: FanoutSource, *,
                 wake: threading.Event | None = None, poll_s: float = 1.0, batch: int = 200, window: int = 1000,
                 **kwargs: Any) -> None:
        super().__init__("catalog_fanout", url, stats=FanoutStats(), **kwargs)
        self.stats: FanoutStats
        self.node_id = node_id
        self.source = source
        self.wake = wake or threading.Event()
        """Set by the node when it commits a catalog change; the table is polled every ``poll_s`` besides."""
        self.poll_s = poll_s
        self.batch = batch
        self.window = window
        self._channel: Channel | None = None
        self._inflight: collections.deque[list[Any]] = collections.deque()
        """[delivery tag (0: nothing to confirm, a stretch of skipped drafts), position, acked] in feed order."""
        self._next_tag = 0
        self._published_to = 0
        self._confirmed_to = 0
        self._recorded_to = 0
        self._recorded_at = 0.0
        self._timer: Any = None
        self._idle_s = 0.0
        self._awaiting_room = False
        """The window was full when the source had more: a confirm pumps, not the idle poll."""

    @property
    def exchange(self) -> str:
        return names(self.node_id)["catalog"]

    def stop(self, timeout: float = 10.0) -> None:
        self.wake.set()
        super().stop(timeout)

    def on_session_end(self) -> None:
        self._record(force=True)
        self._channel = None
        self._inflight.clear()
        self._timer = None
        self._awaiting_room = False

    def on_connection_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.exchange_declare(self.exchange, exchange_type="fanout", durable=True,
                                 callback=lambda _frame: self._ready(channel))

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if self.connection is not None and self.connection.is_open:
            self._failure = reason
            self.connection.close()

    def _ready(self, channel: Channel) -> None:
        channel.confirm_delivery(self._on_confirm)
        self._next_tag = 0
        self._published_to = self._confirmed_to = self._recorded_to = self.source.cursor()
        self.connected()
        self._pump()

    def _pump(self) -> None:
        self._timer = None
        channel = self._channel
        if channel is None or not channel.is_open or self.stopping:
            return
        room = self.window - len(self._inflight)
        full = False
        if room <= 0:
            # The window is full: the next confirm that opens a batch's room pumps again (waiting for
            # the idle poll instead stalled a full window 0.1-1 s each time: ~1,000 msg/s at poll_s=1).
            self._awaiting_room = True
            return
        if room > 0:
            self.wake.clear()
            batch = self.source.pending(min(self.batch, room), after=self._published_to)
            connection = self.connection
            exchange, prefix, app_id = self.exchange, f"{self.node_id}:catalog:", f"exnode:{self.node_id}"
            with connection.gathered() if isinstance(connection, GatheringConnection) else contextlib.nullcontext():
                for message in batch.messages:
                    channel.basic_publish(exchange, "", message.body, FanoutProperties(
                        delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json",
                        headers=message.headers, message_id=f"{prefix}{message.position}", app_id=app_id))
                    self._next_tag += 1
                    self._inflight.append([self._next_tag, message.position, False])
            self.stats.published += len(batch.messages)
            if batch.scanned_to > self._published_to:
                last = batch.messages[-1].position if batch.messages else self._published_to
                if batch.scanned_to > last:  # drafts after the last message: confirmed with what precedes them
                    self._inflight.append([0, batch.scanned_to, True])
                self._published_to = batch.scanned_to
            full = batch.full
            self._advance()
        self._schedule(0 if full else 0.1)

    def _schedule(self, delay: float) -> None:
        """The next read: at once while the source has more, else at the next wake-up or poll (looked at
        every 0.1 s on the loop, which meanwhile serves heartbeats and confirms)."""
        connection = self.connection
        if connection is None or self.stopping:
            return
        self._timer = connection.ioloop.call_later(delay, self._pump if delay == 0 else self._idle)

    def _idle(self) -> None:
        self._record(force=True)
        self._idle_s += 0.1
        if self.wake.is_set() or self._idle_s >= self.poll_s:
            self._idle_s = 0.0
            self._pump()
        else:
            self._schedule(0.1)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        if not acked:
            self.stats.nacked += 1
            log.warning("catalog fanout: the broker refused message %d; publishing again from position %d",
                        method.delivery_tag, self._confirmed_to)
            self.close_connection()  # the next connection starts again after the confirmed cursor
            return
        # Tags grow along the deque, so the scan stops at the first tag past the confirmed one (it was
        # a scan of the whole window per confirm: a million steps per window of a thousand).
        for entry in self._inflight:
            tag = entry[0]
            if tag > method.delivery_tag:
                break
            if tag and not entry[2] and (tag == method.delivery_tag or method.multiple):
                entry[2] = True
                self.stats.confirmed += 1
        self._advance()
        if self._awaiting_room and self.window - len(self._inflight) >= min(self.batch, self.window):
            self._awaiting_room = False
            self._pump()

    def _advance(self) -> None:
        """Move the confirmed cursor past the leading run of confirmed entries (feed order)."""
        position = self._confirmed_to
        while self._inflight and self._inflight[0][2]:
            position = self._inflight.popleft()[1]
        if position > self._confirmed_to:
            self._confirmed_to = position
        self._record(force=not self._inflight)

    def _record(self, *, force: bool) -> None:
        """Store the confirmed cursor: at once when nothing is in flight, else at most every
        RECORD_EVERY_S. Each store is a committed (fsynced) write, and one per confirm frame held the
        publisher near a thousand messages a second; a cursor that lags only means that a restart
        publishes a few more events again, which consumers drop by position (at-least-once as before)."""
        position = self._confirmed_to
        now = time.monotonic()
        if position <= self._recorded_to or not (force or now - self._recorded_at >= RECORD_EVERY_S):
            return
        try:
            self.source.confirmed(position)
        except Exception as error:  # the cursor stays behind: those events are published again later
            log.error("catalog fanout: recording the confirmed position %d failed: %s: %s", position,
                      type(error).__name__, error)
            return
        self._recorded_to, self._recorded_at = position, now
