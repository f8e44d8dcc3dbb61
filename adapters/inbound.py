"""The node's inbound queue: batches that platforms put on ``exnode.<node>.in`` in their own format.

Each message is an envelope (ministry XML, regional JSON or departmental protobuf, by content type)
whose records the *provider* signed (its Merkle root, with a key registered for its department). The
consumer runs the same checks as gRPC ingest and acks only after the commit. A message that can never
be accepted (undecodable, bad signature, schema violations) is published to the node's dead-letter
exchange with the reason in ``x-exnode-dead-letter-reason`` and then acked; a transient failure (the
database is down) is nacked and redelivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika

from adapters import department, ministry, regional
from adapters.envelope import Envelope, EnvelopeError
from adapters.rabbit import declare_topology, names

log = logging.getLogger(__name__)
CODECS = {codec.CONTENT_TYPE: codec for codec in (ministry, regional, department)}


class Poison(Exception):
    """The message can never be accepted; the text is the dead-letter reason."""


def decode(content_type: str | None, body: bytes) -> Envelope:
    codec = CODECS.get((content_type or "").split(";")[0].strip())
    if codec is None:
        raise Poison(f"content type {content_type!r} is not a platform format ({', '.join(sorted(CODECS))})")
    try:
        return codec.decode(body)
    except EnvelopeError as error:
        raise Poison(f"undecodable {content_type} envelope: {error}") from None


@dataclass
class InboundConsumer:
    """Consumes the inbound queue on its own thread; ``handle`` stores one envelope or raises Poison."""

    url: str
    node_id: str
    handle: Callable[[Envelope, str], None]
    prefetch: int = 20
    accepted: int = 0
    dead_lettered: int = 0
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def queue(self) -> str:
        return names(self.node_id)["in"]

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="inbound-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                params = pika.URLParameters(self.url)
                params.heartbeat = 30
                with pika.BlockingConnection(params) as connection:
                    channel = connection.channel()
                    declare_topology(channel, self.node_id, [self.queue])
                    channel.basic_qos(prefetch_count=self.prefetch)
                    channel.basic_consume(self.queue, on_message_callback=self._one)
                    delay = 0.5
                    while not self._stopping.is_set():
                        connection.process_data_events(time_limit=0.2)
            except Exception:
                if not self._stopping.is_set():
                    log.exception("inbound consumer failed; reconnecting")
            if not self._stopping.is_set():
                time.sleep(delay)
                delay = min(10.0, delay * 2)

    def _one(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        source = (properties.app_id or "") if properties else ""
        try:
            envelope = decode(properties.content_type if properties else None, body)
            self.handle(envelope, source)
        except Poison as error:
            headers = {**(properties.headers or {}), "x-exnode-dead-letter-reason": str(error)[:2000],
                       "x-exnode-queue": self.queue}
            channel.basic_publish(names(self.node_id)["dlx"], "", body, pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent, content_type=properties.content_type if properties
                else None, headers=headers, message_id=properties.message_id if properties else None))
            channel.basic_ack(method.delivery_tag)
            self.dead_lettered += 1
            log.warning("inbound message dead-lettered: %s", error)
            return
        except Exception:
            channel.basic_nack(method.delivery_tag, requeue=True)
            raise
        channel.basic_ack(method.delivery_tag)
        self.accepted += 1
