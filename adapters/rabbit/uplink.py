"""The catalog uplink: a lower node's published and retired catalog entries onto the queue of each upper-node
platform (kind ``node``), whose shovel carries them, with the records, to the upper node's inbound queue.

Why its own small loop rather than the outbox: the entries come from the catalog event log, which already
is durable and ordered; a cursor per platform, advanced only after the broker confirmed the messages, makes
the feed at-least-once, and the upper node's store is idempotent (a repeat of a version changes nothing).
When the catalog fanout exchange (``exnode.<node>.catalog``) exists, this loop can bind to it instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pika

from adapters.codecs.relay import CATALOG_CONTENT_TYPE
from adapters.rabbit.topology import declare_topology
from adapters.rabbit.worker import BlockingWorker

log = logging.getLogger(__name__)

Read = Callable[[str], tuple[list[tuple[str, bytes]], int]]
"""platform → (message id, body) of the next entries and the event position they reach."""
Advance = Callable[[str, int], None]


class CatalogUplink(BlockingWorker):
    def __init__(self, url: str | Sequence[str], node_id: str, platforms: Sequence[tuple[str, str]], read: Read,
                 advance: Advance, *, poll_s: float = 1.0, **kwargs: Any) -> None:
        super().__init__("catalog_uplink", url, **kwargs)
        self.node_id = node_id
        self.platforms = platforms
        """(platform name, queue) of every upper-node platform."""
        self.read = read
        self.advance = advance
        self.poll_s = poll_s
        self.sent = 0
        self._positions: dict[str, int] = {}

    def serve(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        declare_topology(channel, self.node_id, [queue for _, queue in self.platforms])
        channel.confirm_delivery()
        self.connected()
        while not self.stopping:
            self.beat()
            if not self.once(channel):
                connection.sleep(self.poll_s)

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
