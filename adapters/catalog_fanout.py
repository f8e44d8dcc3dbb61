"""The catalog feed on RabbitMQ: published and retired catalog events on the node's durable fanout exchange
``exnode.<node>.catalog``, for departments that prefer binding a queue to following a gRPC stream.

Why a thread with a blocking channel in confirm mode, not the outbox dispatcher's windowed ioloop: catalog
events are administrative and rare (a busy day has hundreds), so one confirm round trip per message
(0.5-0.9 k msg/s here, DESIGN.md §12) is ample, and the code stays small. The source's cursor moves
only past messages the broker confirmed; after a dropped connection or a restart the unconfirmed ones are
published again, so delivery is at-least-once: every message carries its feed position in the
``x-exnode-position`` header (and as message id), and consumers deduplicate by it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pika
import pika.exceptions

from adapters.rabbit import names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutMessage:
    position: int
    body: bytes
    headers: dict[str, object]


@dataclass(frozen=True)
class FanoutBatch:
    cursor: int
    """Where the source's confirmed cursor stood when the batch was read."""
    messages: list[FanoutMessage]
    scanned_to: int
    """Confirming this position also skips the events the source left out (drafts)."""
    full: bool


class FanoutSource(Protocol):
    """What the publisher needs of the node: the events to publish, and where to record confirms."""

    def pending(self, limit: int) -> FanoutBatch: ...

    def confirmed(self, position: int) -> None: ...


@dataclass
class FanoutStats:
    published: int = 0
    reconnects: int = 0
    connected: bool = False


@dataclass
class CatalogFanoutPublisher:
    """Publishes the source's events to ``exnode.<node>.catalog`` on its own thread until ``stop``."""

    url: str
    node_id: str
    source: FanoutSource
    wake: threading.Event = field(default_factory=threading.Event)
    """Set by the node when it commits a catalog change; the table is polled every ``poll_s`` besides."""
    poll_s: float = 1.0
    batch: int = 200
    reconnect_max_s: float = 10.0
    stats: FanoutStats = field(default_factory=FanoutStats)
    on_error: Callable[[BaseException], None] | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    last_beat: float = field(default_factory=time.monotonic)
    """The last turn of the loop (the node's liveness)."""

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def exchange(self) -> str:
        return names(self.node_id)["catalog"]

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="catalog-fanout", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            self.last_beat = time.monotonic()
            try:
                self._connected_loop()
            except Exception as error:  # a broken connection or database: reconnect with backoff
                log.warning("catalog fanout publisher: %s", error)
                if self.on_error:
                    self.on_error(error)
            if self.stats.connected:
                delay = 0.5
            self.stats.connected = False
            self.last_beat = time.monotonic()
            if self._stopping.wait(delay):
                break
            self.stats.reconnects += 1
            delay = min(self.reconnect_max_s, delay * 2)

    def _connected_loop(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = 30
        params.blocked_connection_timeout = 60
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.exchange_declare(self.exchange, exchange_type="fanout", durable=True)
            self.stats.connected = True
            while not self._stopping.is_set():
                self.last_beat = time.monotonic()
                self.wake.clear()
                batch = self.source.pending(self.batch)
                self._publish(channel, batch)
                if not batch.full:
                    self._idle(connection)

    def _publish(self, channel: pika.adapters.blocking_connection.BlockingChannel, batch: FanoutBatch) -> None:
        confirmed = batch.cursor
        try:
            for message in batch.messages:
                # In confirm mode basic_publish returns once the broker confirmed (NackError otherwise).
                channel.basic_publish(self.exchange, "", message.body, pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json",
                    headers=message.headers, message_id=f"{self.node_id}:catalog:{message.position}",
                    app_id=f"exnode:{self.node_id}"))
                confirmed = message.position
                self.stats.published += 1
            confirmed = max(confirmed, batch.scanned_to)
        finally:
            if confirmed > batch.cursor:
                self.source.confirmed(confirmed)

    def _idle(self, connection: pika.BlockingConnection) -> None:
        """Wait for a wake-up or the poll interval, serving the connection's heartbeats meanwhile."""
        deadline = time.monotonic() + self.poll_s
        while not self.wake.is_set() and not self._stopping.is_set():
            self.last_beat = time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            connection.process_data_events(time_limit=min(0.1, left))
