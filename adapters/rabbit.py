"""RabbitMQ topology and the outbox dispatcher: publisher confirms in a window, persistent messages,
durable quorum queues, a dead-letter exchange per node, reconnect with backoff.

Why SelectConnection: a BlockingChannel in confirm mode waits one round trip per message (0.5-0.9 k
msg/s here, DESIGN.md §12); keeping up to ``window`` messages unconfirmed and matching the broker's
acks by delivery tag reaches the broker's own rate. The ioloop also keeps heartbeats going: database
work done in it is one short query per tick.

One outbox row is one batch for one platform; it holds one message per record (``pack``), each a
one-record envelope with its inclusion proof, published with the row's headers plus
``x-exnode-record-id``. Why one message per record: receivers acknowledge, deduplicate and dead-letter
records, not batches (DESIGN §5), and a consumer never has to hold a whole batch to verify one record.

Nothing is lost: a row leaves PENDING only when the broker confirmed every one of its messages (or
after ``max_attempts`` nacked attempts, when its messages are dead-lettered with the reason). A dropped
connection leaves the unconfirmed rows PENDING; they are published again after reconnecting, so
delivery is at-least-once and consumers deduplicate by record id.
"""

from __future__ import annotations

import datetime as dt
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

log = logging.getLogger(__name__)

QUORUM = {"x-queue-type": "quorum"}

ROW_HEADERS = frozenset({"x-exnode-consumer", "x-exnode-node", "x-exnode-record-count"})
"""Headers of an outbox row that its record messages do not repeat: the queue is the consumer's, the node
is the message's ``app_id`` (``exnode:<node>``), and the proof's ``tree_size`` is the batch's size. The
node keeps them with the row (the delivery it records on confirm comes from them)."""


def names(node_id: str) -> dict[str, str]:
    """The predictable names of DESIGN.md §7."""
    return {"dlx": f"exnode.{node_id}.dlx", "dlq": f"exnode.{node_id}.dlq", "in": f"exnode.{node_id}.in",
            "catalog": f"exnode.{node_id}.catalog"}


def queue_arguments(node_id: str) -> dict[str, Any]:
    """Durable quorum queues whose rejected or expired messages go to the node's dead-letter exchange."""
    return {**QUORUM, "x-dead-letter-exchange": names(node_id)["dlx"]}


def declare_topology(channel: Any, node_id: str, queues: Sequence[str] = ()) -> None:
    """Declare the node's exchanges and queues on a blocking channel (tests, tools, consumers)."""
    n = names(node_id)
    channel.exchange_declare(n["dlx"], exchange_type="fanout", durable=True)
    channel.queue_declare(n["dlq"], durable=True, arguments=QUORUM)
    channel.queue_bind(n["dlq"], n["dlx"])
    for queue in queues:
        channel.queue_declare(queue, durable=True, arguments=queue_arguments(node_id))


_PACK_MAGIC = b"EXM1"
_ID = struct.Struct(">H")
_BODY = struct.Struct(">I")


def pack(messages: Sequence[tuple[str, bytes]]) -> bytes:
    """The messages of one outbox row, (record id, encoded one-record envelope) each, as one blob."""
    parts = [_PACK_MAGIC]
    for record_id, body in messages:
        raw_id = record_id.encode("utf-8")
        parts += [_ID.pack(len(raw_id)), raw_id, _BODY.pack(len(body)), body]
    return b"".join(parts)


def unpack(blob: bytes) -> list[tuple[str, bytes]]:
    """What ``pack`` packed; ValueError if the blob is not one (a row written by another version)."""
    view = memoryview(blob)
    if bytes(view[:4]) != _PACK_MAGIC:
        raise ValueError("outbox body is not a packed list of messages")
    out, at, end = [], 4, len(view)
    while at < end:
        (id_length,) = _ID.unpack_from(view, at)
        at += _ID.size
        record_id = bytes(view[at:at + id_length]).decode("utf-8")
        at += id_length
        (body_length,) = _BODY.unpack_from(view, at)
        at += _BODY.size
        if at + body_length > end:
            raise ValueError("outbox body is truncated")
        out.append((record_id, bytes(view[at:at + body_length])))
        at += body_length
    return out


class GatheringConnection(SelectConnection):
    """A SelectConnection that writes a row's messages with one socket write.

    Why: pika hands every frame to the socket on its own, so each message cost three ``send`` calls
    (method, header, body), 40 % of the dispatcher's time in ``exnode bench relay``. Inside ``gathered()``
    the frames are collected in order and written together when the block ends; outside it each call's
    frames still go out as one write. (``_output_marshaled_frames`` is pika's one funnel for outgoing
    frames; pika is pinned in pyproject.toml.)"""

    _gathered: list[bytes] | None = None

    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        self.frames_sent += len(marshaled_frames)
        self.bytes_sent += sum(len(f) for f in marshaled_frames)
        if self._gathered is not None:
            self._gathered.extend(marshaled_frames)
        else:
            self._adapter_emit_data(b"".join(marshaled_frames))

    @contextmanager
    def gathered(self) -> Iterator[None]:
        self._gathered = []
        try:
            yield
        finally:
            frames, self._gathered = self._gathered, None
            if frames:
                self._adapter_emit_data(b"".join(frames))


_SHORT = struct.Struct(">B")
_LONG = struct.Struct(">I")


def _short(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _SHORT.pack(len(raw)) + raw


def _long_string_entry(key: str, value: str) -> bytes:
    raw = value.encode("utf-8")
    return _short(key) + b"S" + _LONG.pack(len(raw)) + raw


class RowProperties:
    """The AMQP properties of one outbox row's record messages, encoded once per row.

    Why: pika encodes every message's header table afresh (each key and value through its generic
    encoder), a quarter of the dispatcher's time in ``exnode bench relay``; the messages of a row differ
    only in ``x-exnode-record-id`` and ``message_id``. The bytes are exactly pika's (content type, headers,
    delivery mode 2, message id, app id, in its flag order): tests/unit/test_dispatcher_confirms.py holds
    them equal to ``pika.BasicProperties.encode``."""

    _FLAGS = struct.pack(">H", pika.BasicProperties.FLAG_CONTENT_TYPE | pika.BasicProperties.FLAG_HEADERS
                         | pika.BasicProperties.FLAG_DELIVERY_MODE | pika.BasicProperties.FLAG_MESSAGE_ID
                         | pika.BasicProperties.FLAG_APP_ID)

    def __init__(self, content_type: str, headers: dict[str, str], message_id_prefix: str, app_id: str) -> None:
        if not all(isinstance(value, str) for value in headers.values()):
            raise TypeError("row headers are text")
        self.content_type = content_type
        self.headers = headers
        self.message_id_prefix = message_id_prefix
        self.app_id = app_id
        self._head = self._FLAGS + _short(content_type)
        self._entries = b"".join(_long_string_entry(k, v) for k, v in headers.items())
        self._tail = _short(app_id)

    def for_record(self, record_id: str) -> pika.BasicProperties:
        entry = _long_string_entry("x-exnode-record-id", record_id)
        message_id = f"{self.message_id_prefix}:{record_id}"
        encoded = b"".join((self._head, _LONG.pack(len(self._entries) + len(entry)), self._entries, entry,
                            b"\x02", _short(message_id), self._tail))
        return _Encoded(encoded, content_type=self.content_type, delivery_mode=pika.DeliveryMode.Persistent,
                        headers={**self.headers, "x-exnode-record-id": record_id}, message_id=message_id,
                        app_id=self.app_id)


class _Encoded(pika.BasicProperties):
    """BasicProperties that hand pika their bytes, computed by RowProperties."""

    def __init__(self, encoded: bytes, **fields: Any) -> None:
        super().__init__(**fields)
        self._encoded = encoded

    def encode(self) -> list[bytes]:
        return [self._encoded]


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
class DispatcherStats:
    published: int = 0
    confirmed: int = 0
    nacked: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    connected: bool = False
    beat_ms: int = 0
    """``time.monotonic()`` of the dispatcher's last loop turn, in ms (the node's liveness reads it)."""


@dataclass
class _Row:
    """An outbox row whose messages are on the wire: confirmed when ``remaining`` reaches 0."""

    message: Outgoing
    parts: list[tuple[str, bytes]]
    remaining: int
    nacked: bool = False


class OutboxPort:
    """What the dispatcher needs of the database; node/ implements it over the outbox table."""

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        raise NotImplementedError

    def confirmed(self, ids: Sequence[int]) -> None:
        raise NotImplementedError

    def failed(self, message: Outgoing, error: str, *, dead: bool) -> None:
        raise NotImplementedError


@dataclass
class Dispatcher:
    """Drains the outbox to RabbitMQ on its own thread until ``stop``."""

    url: str
    node_id: str
    outbox: OutboxPort
    window: int = 1000
    """Unconfirmed messages (records) kept on the wire; whole rows are published, so it may be exceeded by
    one row."""
    max_attempts: int = 8
    poll_s: float = 0.05
    reconnect_max_s: float = 10.0
    stats: DispatcherStats = field(default_factory=DispatcherStats)
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _connection: GatheringConnection | None = None
    _channel: Channel | None = None
    _inflight: dict[int, int] = field(default_factory=dict)
    """Delivery tag → outbox row id."""
    _rows: dict[int, _Row] = field(default_factory=dict)
    _row_size: int = 1
    _next_tag: int = 0
    _declared: set[str] = field(default_factory=set)
    _acked: list[int] = field(default_factory=list)
    _timer: Any = None
    """The pending poll: only a waiting pump is woken early, so there is never more than one pump chain."""
    _confirmer: threading.Thread | None = None
    _to_confirm: SimpleQueue = field(default_factory=SimpleQueue)
    _confirming: set[int] = field(default_factory=set)
    """Rows whose messages are all confirmed, being marked so in the database: not due again meanwhile."""
    _confirming_lock: threading.Lock = field(default_factory=threading.Lock)
    on_error: Callable[[BaseException], None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._beat()
        self._confirmer = threading.Thread(target=self._confirm_loop, name="outbox-confirmer", daemon=True)
        self._confirmer.start()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)
        self._thread.start()

    @property
    def last_beat(self) -> float:
        return self.stats.beat_ms / 1000

    def _beat(self) -> None:
        self.stats.beat_ms = int(time.monotonic() * 1000)

    def running(self) -> bool:
        """Both threads live (the liveness of the node; ``last_beat`` tells a stuck loop)."""
        return all(t is not None and t.is_alive() for t in (self._thread, self._confirmer))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            try:
                connection.ioloop.add_callback_threadsafe(self._close)
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        if self._confirmer is not None:  # after the loop: its last confirms are queued by then
            self._to_confirm.put(None)
            self._confirmer.join(timeout)
            self._confirmer = None

    # -- connection lifecycle ---------------------------------------------------------------------------
    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            self._beat()
            try:
                params = pika.URLParameters(self.url)
                params.heartbeat = 30
                params.blocked_connection_timeout = 60
                self._connection = GatheringConnection(
                    params, on_open_callback=self._on_open, on_open_error_callback=self._on_open_error,
                    on_close_callback=self._on_closed)
                self._tick(self._connection)
                self._connection.ioloop.start()
            except Exception as error:
                log.exception("dispatcher loop failed")
                if self.on_error:
                    self.on_error(error)
            if self.stats.connected:
                delay = 0.5  # the connection was up: a new outage starts the backoff afresh
            self.stats.connected = False
            self._reset()
            if self._stopping.is_set():
                break
            self.stats.reconnects += 1
            self._beat()
            self._stopping.wait(delay)
            delay = min(self.reconnect_max_s, delay * 2)
        self._reset()

    def _tick(self, connection: SelectConnection) -> None:
        """Beat once a second while the ioloop turns (connecting, declaring, publishing or idle alike)."""
        self._beat()
        if not self._stopping.is_set():
            connection.ioloop.call_later(1.0, lambda: self._tick(connection))

    def _reset(self) -> None:
        """Unconfirmed messages stay PENDING in the outbox; they are published again after reconnecting."""
        self._flush_acked()
        self._inflight.clear()
        self._rows.clear()
        self._declared.clear()
        self._timer = None
        self._channel = None
        self._next_tag = 0

    def _on_open(self, connection: SelectConnection) -> None:
        if self._stopping.is_set():  # stop() came while connecting, when there was no loop to tell
            connection.close()
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: SelectConnection, error: BaseException) -> None:
        log.warning("broker connection failed: %s", error)
        connection.ioloop.stop()

    def _on_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self._stopping.is_set():
            log.warning("broker connection closed: %s", reason)
        connection.ioloop.stop()

    def _close(self) -> None:
        self._flush_acked()
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is not None:
            self._connection.ioloop.stop()

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
        """A closed channel (a broker error) ends the connection; the run loop reconnects."""
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _ready(self, channel: Channel) -> None:
        channel.confirm_delivery(self._on_confirm)
        self.stats.connected = True
        self._schedule(0)

    # -- publishing -------------------------------------------------------------------------------------
    def wake(self) -> None:
        """New outbox rows were committed: publish them now rather than at the next poll (any thread)."""
        connection = self._connection
        if connection is not None and not self._stopping.is_set():
            try:
                connection.ioloop.add_callback_threadsafe(self._woken)
            except Exception:
                pass  # the loop is closing; the next connection polls the outbox anyway

    def _woken(self) -> None:
        timer, self._timer = self._timer, None
        if timer is None or self._connection is None:
            return  # a pump is running or declaring queues: it reads the outbox again when it is done
        self._connection.ioloop.remove_timeout(timer)
        self._pump()

    def _schedule(self, delay: float) -> None:
        if self._connection is not None and not self._stopping.is_set():
            self._timer = self._connection.ioloop.call_later(delay, self._pump)

    def _pump(self) -> None:
        self._timer = None
        channel = self._channel
        if channel is None or not channel.is_open or self._stopping.is_set():
            return
        try:
            self._flush_acked()
            room = self.window - len(self._inflight)
            rows = max(1, room // self._row_size)
            with self._confirming_lock:
                busy = set(self._rows) | self._confirming
            batch = self.outbox.due(rows, busy) if room > 0 else []
        except Exception as error:
            log.exception("outbox read failed")
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
        connection = self._connection
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
        except Exception:
            log.exception("outbox update failed")

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
        except Exception:
            log.exception("marking %d confirmed outbox rows failed", len(ids))


def backoff(attempts: int, now: dt.datetime) -> dt.datetime:
    """When a nacked message is tried again: 1 s, 2 s, 4 s … up to 5 minutes."""
    return now + dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


def declare_queue(url: str, node_id: str, queue: str) -> None:
    """Declare the node's dead-letter topology and one consumer queue (a Subscribe), on a short-lived
    blocking connection: the subscriber can bind its consumer before the first message is relayed."""
    params = pika.URLParameters(url)
    params.connection_attempts = 2
    with pika.BlockingConnection(params) as connection:
        declare_topology(connection.channel(), node_id, [queue])
