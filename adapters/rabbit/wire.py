"""What an outbox row is on the wire: the messages of one batch for one subscriber, packed into the row's
body, and their AMQP properties, encoded once per row.

The pipeline asks ``row_message`` for a row's headers and body; the dispatcher unpacks and publishes them.
One message per record: receivers acknowledge, deduplicate and dead-letter records, not batches (DESIGN §5),
and a consumer never has to hold a whole batch to verify one record.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection

from security.merkle import SignedBatch

ROW_HEADERS = frozenset({"x-exnode-consumer", "x-exnode-node", "x-exnode-record-count"})
"""Headers of an outbox row that its record messages do not repeat: the queue is the consumer's, the node
is the message's ``app_id`` (``exnode:<node>``), and the proof's ``tree_size`` is the batch's size."""


def row_message(*, batch_id: str, resource_code: str, provider_code: str, consumer_code: str, node_id: str,
                signed: SignedBatch, messages: Sequence[tuple[str, bytes]]) -> tuple[dict[str, str], bytes]:
    """The headers and packed body of one outbox row: ``messages`` are (record id, encoded one-record
    envelope) of one batch for one subscriber, sealed by ``signed``."""
    headers = {
        "x-exnode-batch-id": batch_id, "x-exnode-resource": resource_code, "x-exnode-provider": provider_code,
        "x-exnode-consumer": consumer_code, "x-exnode-node": node_id, "x-exnode-kid": signed.kid,
        "x-exnode-signature": signed.signature.hex(), "x-exnode-merkle-root": signed.root.hex(),
        "x-exnode-record-count": str(len(messages)),
    }
    return headers, pack(messages)


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


