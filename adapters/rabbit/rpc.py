"""Request/reply between nodes over RabbitMQ (DESIGN.md §13): a durable quorum queue per answering node
(``exnode.<node>.rpc``), a durable reply queue per requesting node (``exnode.<node>.rpc-reply``),
correlation ids, persistent messages.

``RpcResponder`` consumes the node's request queue on its own thread and acks a request only after its
answer was published with a broker confirm: a responder killed mid-request has the request redelivered
(the handler answers a redelivered request from its stored answer: at-most-once processing). ``RpcClient``
consumes the node's reply queue and hands each reply to the caller waiting for its correlation id; a reply
nobody waits for any more (its caller gave up at the deadline) is acked and dropped. Requests are published
``mandatory``: one to a node whose request queue does not exist on this broker (it never connected) comes
back at once as ``Unroutable`` instead of being dropped and waited on until the deadline.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import pika

from adapters.rabbit.topology import declare_topology
from adapters.rabbit.worker import BlockingWorker

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/vnd.exnode.rpc+json"


def rpc_queue(node_id: str) -> str:
    return f"exnode.{node_id}.rpc"


def reply_queue(node_id: str) -> str:
    return f"exnode.{node_id}.rpc-reply"


class Unroutable(ConnectionError):
    """The broker returned the request: no queue ``exnode.<target>.rpc`` exists on it."""


def _unroutable(routing_key: str, reply_text: str) -> str:
    target = routing_key.removeprefix("exnode.").removesuffix(".rpc")
    return (f"node {target} has no request queue {routing_key} on this broker ({reply_text}): it never "
            "connected to it, so the request was not delivered")


class Transient(Exception):
    """The handler cannot answer now (the database is down): the request is requeued, not answered."""


class RpcResponder(BlockingWorker):
    """Answers the requests on ``exnode.<node>.rpc``: ``handle(body) → answer body``."""

    def __init__(self, url: str | Sequence[str], node_id: str, handle: Callable[[bytes], bytes], *,
                 prefetch: int = 8, **kwargs: Any) -> None:
        super().__init__("rpc", url, **kwargs)
        self.node_id = node_id
        self.handle = handle
        self.prefetch = prefetch
        self.answered = 0

    def serve(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        queue = rpc_queue(self.node_id)
        declare_topology(channel, self.node_id, [queue])
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=self.prefetch)
        channel.basic_consume(queue, on_message_callback=self._one)
        self.connected()
        while not self.stopping:
            self.beat()
            connection.process_data_events(time_limit=0.2)

    def _one(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            answer = self.handle(body)
        except Transient as error:
            log.warning("rpc request requeued: %s", error)
            channel.basic_nack(method.delivery_tag, requeue=True)
            time.sleep(0.5)
            return
        if properties.reply_to:
            channel.basic_publish("", properties.reply_to, answer, pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent, content_type=CONTENT_TYPE,
                correlation_id=properties.correlation_id, app_id=self.node_id), mandatory=False)
        channel.basic_ack(method.delivery_tag)
        self.answered += 1


class RpcClient(BlockingWorker):
    """Sends requests to other nodes' request queues and matches their replies by correlation id."""

    def __init__(self, url: str | Sequence[str], node_id: str, *, on_reply: Callable[[str, bytes], None] | None = None,
                 on_return: Callable[[str, str], None] | None = None, **kwargs: Any) -> None:
        super().__init__("rpc-client", url, **kwargs)
        self.node_id = node_id
        self.on_reply = on_reply
        """Replies nobody waits for (a household check's answers after a restart): handed here, acked after."""
        self.on_return = on_return
        """Requests the broker returned that nobody waits for (household checks): correlation id and reason."""
        self._waiting: dict[str, Future[bytes]] = {}
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._ready = threading.Event()

    def serve(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        declare_topology(channel, self.node_id, [reply_queue(self.node_id)])
        channel.basic_qos(prefetch_count=64)
        channel.add_on_return_callback(self._returned)
        channel.basic_consume(reply_queue(self.node_id), on_message_callback=self._reply)
        self._connection, self._channel = connection, channel
        self._ready.set()
        self.connected()
        try:
            while not self.stopping:
                self.beat()
                connection.process_data_events(time_limit=0.2)
        finally:
            self._ready.clear()
            self._connection = self._channel = None

    def _reply(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        correlation = properties.correlation_id or ""
        with self._lock:
            waiting = self._waiting.pop(correlation, None)
        if waiting is not None:
            waiting.set_result(body)
        elif self.on_reply is not None:
            self.on_reply(correlation, body)
        channel.basic_ack(method.delivery_tag)

    def _returned(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        correlation = properties.correlation_id or ""
        reason = _unroutable(method.routing_key, method.reply_text)
        with self._lock:
            waiting = self._waiting.pop(correlation, None)
        if waiting is not None:
            waiting.set_exception(Unroutable(reason))
        elif self.on_return is not None:
            try:
                self.on_return(correlation, reason)
            except Exception as error:  # the request's owner finds out at its deadline instead
                log.warning("a returned request (%s) could not be recorded: %s", correlation, error)

    def send(self, target_node: str, body: bytes, correlation_id: str) -> None:
        """Publish a request whose answer is not awaited here: it comes to ``on_reply`` (household checks)."""
        self._publish(target_node, body, correlation_id, 10.0)

    def _publish(self, target_node: str, body: bytes, correlation_id: str, wait_s: float) -> None:
        if not self._ready.wait(wait_s):
            raise ConnectionError(f"the broker is not reachable for the reply queue {reply_queue(self.node_id)}")
        connection, channel = self._connection, self._channel
        if connection is None or channel is None:
            raise ConnectionError("the broker connection was lost")
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type=CONTENT_TYPE,
                                          correlation_id=correlation_id, reply_to=reply_queue(self.node_id),
                                          app_id=self.node_id)
        connection.add_callback_threadsafe(
            lambda: channel.basic_publish("", rpc_queue(target_node), body, properties, mandatory=True))

    def call(self, target_node: str, body: bytes, timeout: float, correlation_id: str = "",
             abandoned: Sequence[object] | None = None) -> bytes:
        """Publish the request to ``exnode.<target>.rpc`` and wait for its reply; TimeoutError at the
        deadline (the answering node never processes an expired request: it checks the deadline too).
        ``abandoned``: non-empty once the caller this waits for has left (a cancelled gRPC call): the wait
        ends then (ConnectionAbortedError), freeing the thread, and the reply, when it comes, is dropped."""
        correlation = correlation_id or uuid.uuid4().hex
        future: Future[bytes] = Future()
        with self._lock:
            self._waiting[correlation] = future
        try:
            self._publish(target_node, body, correlation, min(timeout, 10.0))
        except ConnectionError:
            with self._lock:
                self._waiting.pop(correlation, None)
            raise
        end = time.monotonic() + timeout
        try:
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"node {target_node} did not answer within {timeout:.1f} s")
                try:
                    return future.result(remaining if abandoned is None else min(remaining, 0.1))
                except TimeoutError:
                    if abandoned:
                        raise ConnectionAbortedError(f"the caller left: the answer of node {target_node} is no "
                                                     "longer awaited") from None
        finally:
            with self._lock:
                self._waiting.pop(correlation, None)
