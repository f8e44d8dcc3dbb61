"""The catalog uplink: a lower node's published and retired catalog entries onto the queue of each upper-node
platform (kind ``node``), whose shovel carries them, with the records, to the upper node's inbound queue.

Why its own small loop rather than the outbox: the entries come from the catalog event log, which already
is durable and ordered; a cursor per platform, advanced only after the broker confirmed the messages, makes
the feed at-least-once, and the upper node's store is idempotent (a repeat of a version changes nothing).
When the catalog fanout exchange (``exnode.<node>.catalog``) exists, this loop can bind to it instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pika

from adapters.rabbit import declare_topology
from adapters.relay import CATALOG_CONTENT_TYPE

log = logging.getLogger(__name__)

Read = Callable[[str], tuple[list[tuple[str, bytes]], int]]
"""platform → (message id, body) of the next entries and the event position they reach."""
Advance = Callable[[str, int], None]


@dataclass
class CatalogUplink:
    url: str
    node_id: str
    platforms: Sequence[tuple[str, str]]
    """(platform name, queue) of every upper-node platform."""
    read: Read
    advance: Advance
    poll_s: float = 1.0
    sent: int = 0
    _positions: dict[str, int] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    last_beat: float = field(default_factory=time.monotonic)
    """The last turn of the loop (the node's liveness)."""

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="catalog-uplink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            self.last_beat = time.monotonic()
            try:
                params = pika.URLParameters(self.url)
                params.heartbeat = 30
                with pika.BlockingConnection(params) as connection:
                    channel = connection.channel()
                    declare_topology(channel, self.node_id, [queue for _, queue in self.platforms])
                    channel.confirm_delivery()
                    delay = 0.5
                    while not self._stopping.is_set():
                        self.last_beat = time.monotonic()
                        if not self.once(channel):
                            connection.sleep(self.poll_s)
            except Exception:
                if not self._stopping.is_set():
                    log.exception("catalog uplink failed; reconnecting")
            if not self._stopping.is_set():
                self.last_beat = time.monotonic()
                self._stopping.wait(delay)
                delay = min(10.0, delay * 2)

    def once(self, channel: pika.adapters.blocking_connection.BlockingChannel) -> bool:
        """Publish the next entries of every platform; True when there were any (more may follow)."""
        busy = False
        for name, queue in self.platforms:
            entries, position = self.read(name)
            for message_id, body in entries:
                # In confirm mode a nack raises here, and the cursor stays where it was.
                channel.basic_publish("", queue, body, pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, content_type=CATALOG_CONTENT_TYPE,
                    message_id=message_id, app_id=f"exnode:{self.node_id}",
                    headers={"x-exnode-node": self.node_id, "x-exnode-record-id": message_id}), mandatory=False)
                self.sent += 1
            if position != self._positions.get(name):
                self.advance(name, position)
                self._positions[name] = position
            busy = busy or bool(entries)
        return busy
