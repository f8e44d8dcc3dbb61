"""The dispatcher's bookkeeping of publisher confirms, fed the broker's Ack/Nack frames directly:
which outbox rows are confirmed, retried or dead-lettered (the broker side is in the integration tests)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pika
import pytest
from pika.spec import Basic

from adapters.rabbit import Dispatcher, OutboxPort, Outgoing, RowProperties, pack, unpack


class Recorder(OutboxPort):
    def __init__(self) -> None:
        self.confirmed_ids: list[int] = []
        self.failures: list[tuple[int, bool]] = []

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        return []

    def confirmed(self, ids):
        self.confirmed_ids.extend(ids)

    def failed(self, message: Outgoing, error: str, *, dead: bool) -> None:
        self.failures.append((message.id, dead))


class Channel:
    is_open = True

    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict]] = []

    def basic_publish(self, exchange, routing_key, body, properties):
        self.published.append((exchange, routing_key, dict(properties.headers or {})))


def message(n: int, attempts: int = 0, records: int = 1) -> Outgoing:
    body = pack([(f"r{n}-{i}", b"{}") for i in range(records)])
    return Outgoing(n, "exnode.n1.out.p", body, "application/json", {"x-exnode-batch-id": f"b{n}"}, f"b{n}:p",
                    attempts)


def dispatcher(recorder: Recorder) -> tuple[Dispatcher, Channel]:
    d = Dispatcher("amqp://unused", "n1", recorder, max_attempts=3)
    channel = Channel()
    d._channel = channel  # type: ignore[assignment]
    for n in range(1, 6):
        d._publish(channel, message(n, attempts=2 if n == 5 else 0))  # type: ignore[arg-type]
    return d, channel


def frame(kind: type, tag: int, multiple: bool) -> SimpleNamespace:
    return SimpleNamespace(method=kind(delivery_tag=tag, multiple=multiple))


def test_a_multiple_ack_confirms_every_message_up_to_its_tag():
    recorder = Recorder()
    d, _ = dispatcher(recorder)
    d._on_confirm(frame(Basic.Ack, 3, True))
    d._flush_acked()
    assert recorder.confirmed_ids == [1, 2, 3] and sorted(d._inflight) == [4, 5]


def test_a_nack_schedules_a_retry_and_the_last_attempt_is_dead_lettered_with_the_reason():
    recorder = Recorder()
    d, channel = dispatcher(recorder)
    d._on_confirm(frame(Basic.Nack, 4, False))
    d._on_confirm(frame(Basic.Nack, 5, False))
    assert recorder.failures == [(4, False), (5, True)]
    [(exchange, _, headers)] = [p for p in channel.published if p[0]]
    assert exchange == "exnode.n1.dlx" and "nacked" in headers["x-exnode-dead-letter-reason"]
    assert headers["x-exnode-batch-id"] == "b5" and d.stats.dead_lettered == 1


def test_a_lost_connection_leaves_unconfirmed_rows_pending_for_the_next_connection():
    recorder = Recorder()
    d, _ = dispatcher(recorder)
    d._on_confirm(frame(Basic.Ack, 2, True))
    d._reset()
    assert recorder.confirmed_ids == [1, 2] and d._inflight == {} and recorder.failures == []


def test_pack_round_trips_and_refuses_what_it_did_not_pack():
    parts = [("DB-000001", "张三".encode()), ("x", b""), ("DB-2", bytes(range(256)) * 300)]
    assert unpack(pack(parts)) == parts and unpack(pack([])) == []
    with pytest.raises(ValueError, match="not a packed"):
        unpack(b'{"records": []}')
    with pytest.raises(ValueError, match="truncated"):
        unpack(pack(parts)[:-1])


def test_a_row_of_several_records_is_one_message_each_and_confirmed_when_all_are():
    recorder = Recorder()
    d = Dispatcher("amqp://unused", "n1", recorder, max_attempts=3)
    channel = Channel()
    d._channel = channel  # type: ignore[assignment]
    d._publish(channel, message(7, records=3))  # type: ignore[arg-type]
    assert [h["x-exnode-record-id"] for _, _, h in channel.published] == ["r7-0", "r7-1", "r7-2"]
    d._on_confirm(frame(Basic.Ack, 2, True))
    d._flush_acked()
    assert recorder.confirmed_ids == [] and d.stats.confirmed == 2
    d._on_confirm(frame(Basic.Ack, 3, False))
    d._flush_acked()
    assert recorder.confirmed_ids == [7] and d._rows == {}


def test_one_nacked_record_sends_its_whole_row_again_later():
    recorder = Recorder()
    d = Dispatcher("amqp://unused", "n1", recorder, max_attempts=3)
    channel = Channel()
    d._channel = channel  # type: ignore[assignment]
    d._publish(channel, message(8, records=3))  # type: ignore[arg-type]
    d._on_confirm(frame(Basic.Nack, 2, False))
    d._on_confirm(frame(Basic.Ack, 3, True))
    d._flush_acked()
    assert recorder.confirmed_ids == [] and recorder.failures == [(8, False)]


def test_a_row_that_is_not_a_packed_body_is_dead_lettered_with_the_reason():
    recorder = Recorder()
    d = Dispatcher("amqp://unused", "n1", recorder, max_attempts=3)
    channel = Channel()
    d._channel = channel  # type: ignore[assignment]
    bad = Outgoing(9, "q", b"garbage", "application/json", {"x-exnode-batch-id": "b9"}, "b9:p", 0)
    d._publish(channel, bad)  # type: ignore[arg-type]
    assert recorder.failures == [(9, True)]
    [(exchange, _, headers)] = channel.published
    assert exchange == "exnode.n1.dlx" and "not a packed" in headers["x-exnode-dead-letter-reason"]


class SlowRecorder(Recorder):
    """Marks rows confirmed only when let: the database's write lock held by an ingest."""

    def __init__(self) -> None:
        super().__init__()
        self.let = threading.Event()
        self.excluded: list[set[int]] = []

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        self.excluded.append(set(exclude))
        return []

    def confirmed(self, ids):
        assert self.let.wait(10)
        super().confirmed(ids)


def test_confirmed_rows_are_marked_beside_the_loop_and_are_not_due_again_until_marked():
    recorder = SlowRecorder()
    d, channel = dispatcher(recorder)
    d._confirmer = threading.Thread(target=d._confirm_loop, daemon=True)
    d._confirmer.start()
    d._on_confirm(frame(Basic.Ack, 3, True))
    d._pump()  # hands rows 1-3 to the confirmer, which waits; the loop reads the outbox meanwhile
    assert recorder.excluded == [{1, 2, 3, 4, 5}] and recorder.confirmed_ids == []
    recorder.let.set()
    d._to_confirm.put(None)
    d._confirmer.join(10)
    assert recorder.confirmed_ids == [1, 2, 3] and d._confirming == set()
    d._pump()
    assert recorder.excluded[-1] == {4, 5}


@pytest.mark.parametrize("record_id", ["DB-000001", "x", "L000000123-1732345678901234567", "张"])
def test_a_row_s_properties_encode_exactly_as_pika_encodes_them(record_id):
    headers = {"x-exnode-batch-id": "b" * 32, "x-exnode-resource": "311140001/000001",
               "x-exnode-provider": "11100000MB01284764", "x-exnode-kid": "k1", "x-exnode-signature": "ab" * 64,
               "x-exnode-merkle-root": "cd" * 32, "x-exnode-note": "低保"}
    row = RowProperties("application/json", headers, "b1:hhht", "exnode:n1")
    ours = row.for_record(record_id)
    theirs = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
                                  headers={**headers, "x-exnode-record-id": record_id},
                                  message_id=f"b1:hhht:{record_id}", app_id="exnode:n1")
    assert b"".join(ours.encode()) == b"".join(theirs.encode())
    assert ours.headers == theirs.headers and ours.message_id == theirs.message_id
    decoded = pika.BasicProperties()
    decoded.decode(b"".join(ours.encode()))
    assert decoded.headers == {**headers, "x-exnode-record-id": record_id}
