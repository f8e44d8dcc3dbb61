"""The node's inbound queue: batches that platforms put on ``exnode.<node>.in`` in their own format.

Each message is an envelope (ministry XML, regional JSON or departmental protobuf, by content type)
whose records the *provider* signed (its Merkle root, with a key registered for its department). The
consumer runs the same checks as gRPC ingest and acks only after the commit. A message that can never
be accepted (undecodable, bad signature, schema violations) is published to the node's dead-letter
exchange with the reason in ``x-exnode-dead-letter-reason`` and then acked; a transient failure (the
database is down) is nacked and redelivered.

Messages of the tier link (``adapters.codecs.relay``: one-record envelopes a lower node relayed, its catalog
entries) are not handled one by one: they are held (up to ``group_max``, at most ``linger_s``) and handed to
``handle_group`` together, which stores each (sender, batch) in one transaction; they are acked after that
commit, each poison one dead-lettered with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pika

from adapters.codecs import department, ministry, regional, relay
from adapters.codecs.envelope import Envelope, EnvelopeError
from adapters.errors import AdapterError
from adapters.rabbit.topology import declare_topology, names
from adapters.rabbit.worker import BlockingWorker

log = logging.getLogger(__name__)
CODECS = {codec.CONTENT_TYPE: codec for codec in (ministry, regional, department)}
GROUPED = (relay.CONTENT_TYPE, relay.CATALOG_CONTENT_TYPE, relay.REPORT_CONTENT_TYPE, relay.DEMAND_CONTENT_TYPE,
           relay.DECISION_CONTENT_TYPE, relay.DISPUTE_CONTENT_TYPE, relay.DEMAND_CHANGE_CONTENT_TYPE,
           relay.DISPUTE_STEP_CONTENT_TYPE, relay.OBJECTION_CONTENT_TYPE, relay.OBJECTION_ANSWER_CONTENT_TYPE)
"""Content types of the tier link, handled in groups (``handle_group``)."""

class Poison(AdapterError):
    """The message can never be accepted; the text is the dead-letter reason."""


class Later(AdapterError):
    """Not yet: the message is requeued rather than dead-lettered (what it needs may arrive first, e.g. the
    catalog entry of its resource). Handlers give up, with a ``Poison``, after some deliveries."""


GroupHandler = Callable[[list[tuple[str, bytes, int]]], list[Poison | Later | None]]
"""(content type, body, earlier deliveries) of each held message → None (stored or duplicate), ``Poison``
(dead-letter it, with the reason) or ``Later`` (requeue it) each."""


def decode(content_type: str | None, body: bytes) -> Envelope:
    kind = (content_type or "").split(";")[0].strip()
    codec = CODECS.get(kind)
    if kind in GROUPED:
        raise Poison(f"content type {kind!r} comes from a lower-tier node, and this node trusts none "
                     "(no public-keys.json in exchange.peers_dir)")
    if codec is None:
        raise Poison(f"content type {content_type!r} is not a platform format ({', '.join(sorted(CODECS))})")
    try:
        return codec.decode(body)
    except EnvelopeError as error:
        raise Poison(f"undecodable {content_type} envelope: {error}") from None


class InboundConsumer(BlockingWorker):
    """Consumes the inbound queue on its own thread; ``handle`` stores one envelope or raises Poison."""

    def __init__(self, url: str | Sequence[str], node_id: str, handle: Callable[[Envelope, str], None], *,
                 prefetch: int = 20, handle_group: GroupHandler | None = None, group_max: int = 500,
                 linger_s: float = 0.05, **kwargs: Any) -> None:
        super().__init__("inbound", url, **kwargs)
        self.node_id = node_id
        self.handle = handle
        self.prefetch = prefetch
        self.handle_group = handle_group
        self.group_max = group_max
        self.linger_s = linger_s
        self.accepted = 0
        self.dead_lettered = 0
        self._held: list[tuple[Any, Any, bytes]] = []
        self._held_since = 0.0

    @property
    def queue(self) -> str:
        return names(self.node_id)["in"]

    def serve(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        declare_topology(channel, self.node_id, [self.queue])
        prefetch = max(self.prefetch, self.group_max) if self.handle_group else self.prefetch
        channel.basic_qos(prefetch_count=prefetch)
        channel.basic_consume(self.queue, on_message_callback=self._one)
        self._held.clear()  # unacked deliveries of a lost channel come again
        self.connected()
        while not self.stopping:
            self.beat()
            connection.process_data_events(time_limit=self.linger_s if self._held else 0.2)
            if self._held and (len(self._held) >= self.group_max
                               or time.monotonic() - self._held_since >= self.linger_s):
                self._flush(channel)

    def _flush(self, channel: Any) -> None:
        held, self._held = self._held, []
        assert self.handle_group is not None
        try:
            results = self.handle_group([(properties.content_type, body, _deliveries(properties))
                                         for _, properties, body in held])
        except Exception as error:
            log.error("storing %d relayed messages failed; they come again: %s: %s", len(held),
                      type(error).__name__, error)
            for method, _, _ in held:
                channel.basic_nack(method.delivery_tag, requeue=True)
            time.sleep(0.5)
            return
        later = 0
        for (method, properties, body), problem in zip(held, results, strict=True):
            if problem is None:
                channel.basic_ack(method.delivery_tag)
                self.accepted += 1
            elif isinstance(problem, Later):
                channel.basic_nack(method.delivery_tag, requeue=True)
                later += 1
            else:
                self._dead_letter(channel, method, properties, body, str(problem))
        if later:
            log.info("%d relayed messages requeued: %s", later, next(p for p in results if isinstance(p, Later)))
            time.sleep(0.2)  # spaces their redeliveries while what they wait for arrives

    def _dead_letter(self, channel: Any, method: Any, properties: Any, body: bytes, reason: str) -> None:
        headers = {**((properties.headers if properties else None) or {}),
                   "x-exnode-dead-letter-reason": reason[:2000], "x-exnode-queue": self.queue}
        channel.basic_publish(names(self.node_id)["dlx"], "", body, pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type=properties.content_type if properties
            else None, headers=headers, message_id=properties.message_id if properties else None))
        channel.basic_ack(method.delivery_tag)
        self.dead_lettered += 1
        log.warning("inbound message dead-lettered: %s", reason)

    def _one(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        source = (properties.app_id or "") if properties else ""
        content_type = ((properties.content_type if properties else None) or "").split(";")[0].strip()
        if self.handle_group is not None and content_type in GROUPED:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append((method, properties, body))
            return
        try:
            envelope = decode(properties.content_type if properties else None, body)
            self.handle(envelope, source)
        except Poison as error:
            self._dead_letter(channel, method, properties, body, str(error))
            return
        except Exception as error:  # transient (the database): redelivered after a pause
            log.error("storing an inbound batch failed; it comes again: %s: %s", type(error).__name__, error)
            channel.basic_nack(method.delivery_tag, requeue=True)
            time.sleep(0.5)
            return
        channel.basic_ack(method.delivery_tag)
        self.accepted += 1


def _deliveries(properties: Any) -> int:
    """Earlier deliveries of the message (quorum queues count them in ``x-delivery-count``)."""
    value = ((properties.headers if properties else None) or {}).get("x-delivery-count", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
