"""DESIGN.md §5: no record that the node acknowledged is ever lost: not on kill -9 of the node, not on a
broker restart, not on a dropped connection; at-least-once on the wire, exactly-once in effect (by
record id).

Every test goes the real way: signed batches over gRPC, one transaction with the outbox, the
dispatcher's publisher confirms, a durable quorum queue, and a subscriber that decodes the envelopes.
Duplicates on the wire are allowed; what must hold is that the distinct record ids that reach the
subscriber are exactly the ones the node acknowledged, and that the node stored each record once.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters import rabbit
from adapters.rabbit import OutboxPort
from node.bootstrap import load_sample
from node.config import load_config
from node.storage.database import make_engine
from node.storage.tables import records
from security.keys import KeyStore
from tests.fault.support import (
    AMQP,
    LOW_INCOME,
    PROVIDER,
    ConsumerProcess,
    Ingestor,
    Key,
    Proxy,
    ServedNode,
    broker_accepts,
    delete_node_topology,
    drain,
    exnode,
    out_queue,
    outbox_states,
    platforms_toml,
    rabbitmqctl,
    set_up_exchange,
    wait_until,
)
from tests.integration.grpc_node import RunningNode, make_config

pytestmark = [pytest.mark.rabbitmq]


def stored_records(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(records).where(
            records.c.provider_code == PROVIDER, records.c.resource_code == LOW_INCOME)).scalar_one()


# -- kill -9 of the node mid-stream ---------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedNode]:
    """`exnode init --sample --dev` with a node id of its own and one regional platform; `exnode serve`.

    The id is given to init (not edited into exnode.toml afterwards): init already audits the sample
    import under the node id, and a checkpoint signed for one node id does not verify for another."""
    data = tmp_path / "node"
    node_id = f"f{uuid.uuid4().hex[:10]}"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id)
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    node = ServedNode(data, tmp_path / "serve.log")
    assert node.node_id == node_id
    try:
        node.start()
        yield node
    finally:
        node.close()
        delete_node_topology(node_id)


@pytest.mark.timeout(1200)
def test_kill_9_of_the_node_mid_stream_of_100_000_records_loses_no_acknowledged_record(served: ServedNode):
    total, size = 100_000, 500
    batches = total // size
    key = Key()
    queue = set_up_exchange(served.channel_as, key)
    assert queue == out_queue(served.node_id)
    provider = Ingestor(lambda: served.channel_as(PROVIDER, ("provider",)), key, batches=batches, size=size,
                        tag=f"k{uuid.uuid4().hex[:6]}").start()
    fraction = random.uniform(0.2, 0.4)
    kill_at = max(1, int(batches * fraction))
    wait_until(lambda: len(provider.answered) >= kill_at or provider.failure, 300,
               lambda: f"{len(provider.answered)} batches answered, waiting for {kill_at}")
    assert provider.failure is None, provider.failure
    served.kill()
    at_kill = len(provider.answered)
    assert at_kill < batches, "the provider finished before the kill: nothing was in flight"
    served.start()
    provider.join(480)
    assert provider.interruptions, "the kill did not interrupt the provider's stream"

    acknowledged = provider.acknowledged_ids()
    assert acknowledged == provider.all_ids() and len(acknowledged) == total
    answers = [provider.answered[i] for i in range(batches)]
    assert sum(a.accepted + a.duplicates for a in answers) == total
    assert all(a.duplicates in (0, size) for a in answers), "a batch was stored in part"
    resent = [i for i, a in enumerate(answers) if a.duplicates]  # committed before the kill, answered after
    context = (f"killed after {at_kill}/{batches} answered batches (aimed at {fraction:.0%}); answered"
               f" as duplicates when resent: {resent}")

    trusted = {served.node_id: KeyStore.load(served.config.keys_dir).public}
    arrived = drain(queue, acknowledged, trusted=trusted, timeout=240)
    context += f"; {arrived.messages} messages, {arrived.duplicates()} duplicate record ids on the wire"
    assert arrived.problems == [], context
    missing = acknowledged - arrived.distinct
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}; {context}"
    assert arrived.distinct == acknowledged, f"records nobody acknowledged arrived; {context}"

    status = exchange_pb2_grpc.ExchangeServiceStub(served.channel_as(PROVIDER, ("provider",)))
    stored = [i for i, a in enumerate(answers) if a.accepted]  # a duplicates-only batch has nothing to relay
    sample = sorted({stored[0], stored[-1], *(i for i in stored if abs(i - at_kill) <= 1),
                     *random.sample(stored, min(5, len(stored)))})
    for index in sample:
        batch_id = answers[index].batch_id

        def published(batch_id: str = batch_id) -> bool:
            answer = status.GetDeliveryStatus(pb.DeliveryStatusRequest(batch_id=batch_id), timeout=30)
            return answer.state == "PUBLISHED" and answer.record_count == size

        wait_until(published, 60, f"batch {index} ({batch_id}) PUBLISHED; {context}")

    assert served.stop() == 0, served.log_tail()
    engine = make_engine(load_config(served.data, environ={}).database_url)
    try:
        assert stored_records(engine) == total, f"each record is stored once; {context}"
        assert outbox_states(engine)["PENDING"] == 0, context
    finally:
        engine.dispose()
    verify = exnode("audit", "verify", "--local", "--data", str(served.data))
    assert verify.returncode == 0, verify.stdout + verify.stderr


# -- the broker: restarted, connections dropped, a consumer that dies -----------------------------------
def in_process_node(tmp_path: Path, amqp_url: str = AMQP) -> RunningNode:
    """A node with the sample catalog and its dispatcher, like the relay tests', optionally reaching the
    broker through ``amqp_url``."""
    data = tmp_path / "node"
    config = make_config(data)
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    config = replace(config, node=replace(config.node, id=f"f{uuid.uuid4().hex[:10]}"),
                     rabbitmq=replace(config.rabbitmq, url=amqp_url))
    running = RunningNode(config)
    load_sample(running.node)
    running.node.start_dispatcher()
    return running


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningNode]:
    node = in_process_node(tmp_path)
    try:
        yield node
    finally:
        node.close()
        delete_node_topology(node.config.node.id)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[RunningNode, Proxy]]:
    proxy = Proxy()
    node = in_process_node(tmp_path, proxy.url)
    try:
        yield node, proxy
    finally:
        node.close()
        proxy.close()
        delete_node_topology(node.config.node.id)


def provider_of(node: RunningNode, key: Key, *, batches: int, size: int, first: int = 1) -> Ingestor:
    return Ingestor(lambda: node.channel_as(PROVIDER, ["provider"]), key, batches=batches, size=size, first=first,
                    tag=f"r{uuid.uuid4().hex[:6]}")


def all_relayed(node: RunningNode, expected_rows: int) -> None:
    """Every outbox row of the run confirmed by the broker (none pending, none dead-lettered)."""
    def done() -> bool:
        states = outbox_states(node.node.engine)
        return states["CONFIRMED"] == expected_rows and states["PENDING"] == 0

    wait_until(done, 120, lambda: f"outbox {dict(outbox_states(node.node.engine))}, dispatcher "
                                  f"{node.node.dispatcher.stats if node.node.dispatcher else None}")
    assert outbox_states(node.node.engine)["DEAD"] == 0


@pytest.mark.timeout(300)
def test_a_broker_restart_mid_relay_loses_no_acknowledged_record(running: RunningNode):
    key = Key()
    queue = set_up_exchange(running.channel_as, key)
    dispatcher = running.node.dispatcher
    assert dispatcher is not None
    before = provider_of(running, key, batches=200, size=100).start()  # 20,000 records
    wait_until(lambda: dispatcher.stats.confirmed >= 2_000 or before.failure, 120,
               lambda: f"the dispatcher relaying: {dispatcher.stats}")
    try:
        rabbitmqctl("stop_app")
        wait_until(lambda: not dispatcher.stats.connected, 30, "the dispatcher noticing the broker is gone")
        time.sleep(3)
        pending_while_down = outbox_states(running.node.engine)["PENDING"]
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
        wait_until(broker_accepts, 60, "the broker accepting connections again")
    before.join(240)
    after = provider_of(running, key, batches=50, size=100, first=20_001)  # 5,000 more after the restart
    after.run()

    assert pending_while_down > 0, "nothing waited in the outbox while the broker was down"
    all_relayed(running, 250)
    assert dispatcher.stats.reconnects >= 1, dispatcher.stats
    acknowledged = before.acknowledged_ids() | after.acknowledged_ids()
    assert len(acknowledged) == 25_000
    arrived = drain(queue, acknowledged)
    context = f"dispatcher {dispatcher.stats}; {arrived.messages} messages, {arrived.duplicates()} duplicate ids"
    assert arrived.problems == [], context
    assert arrived.distinct == acknowledged, (f"{len(acknowledged - arrived.distinct)} lost, "
                                              f"{len(arrived.distinct - acknowledged)} unexpected; {context}")
    assert stored_records(running.node.engine) == 25_000


@pytest.mark.timeout(300)
def test_dropped_broker_connections_mid_relay_lose_no_acknowledged_record(proxied: tuple[RunningNode, Proxy]):
    """The dispatcher's connection cut (twice) while it relays: unconfirmed rows stay pending and go again."""
    running, proxy = proxied
    key = Key()
    queue = set_up_exchange(running.channel_as, key)
    dispatcher = running.node.dispatcher
    assert dispatcher is not None
    provider = provider_of(running, key, batches=150, size=100).start()
    for cuts, threshold in enumerate((2_000, 6_000)):  # confirmed messages: one per record
        wait_until(lambda cuts=cuts, threshold=threshold: dispatcher.stats.confirmed >= threshold
                   and dispatcher.stats.connected and dispatcher.stats.reconnects >= cuts,
                   120, lambda: f"the dispatcher relaying: {dispatcher.stats}")
        assert proxy.cut() >= 1
    provider.join(240)
    all_relayed(running, 150)
    assert dispatcher.stats.reconnects >= 2 and proxy.accepted >= 3, (dispatcher.stats, proxy.accepted)
    acknowledged = provider.acknowledged_ids()
    arrived = drain(queue, acknowledged)
    assert arrived.problems == [] and arrived.distinct == acknowledged, (
        f"{len(acknowledged - arrived.distinct)} lost; dispatcher {dispatcher.stats}")


class RecordingBackoff(rabbit.BackoffPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.waits.append(delay)
        return delay


@pytest.mark.timeout(120)
def test_each_dropped_connection_is_retried_from_the_first_backoff_step():
    """The backoff grows over consecutive failed attempts only: once a connection was up for the stable
    period, the next drop starts again at the first step (it used to keep growing across drops, to 10 s
    per blip for good). The first step is 0.5 s with full jitter: between 0.25 and 0.5 s."""

    class NothingDue(OutboxPort):
        def due(self, limit: int, exclude: set[int]) -> list:
            return []

    node_id = f"f{uuid.uuid4().hex[:10]}"
    proxy = Proxy()
    backoff = RecordingBackoff()
    dispatcher = rabbit.Dispatcher(proxy.url, node_id, NothingDue(), backoff=backoff)
    dispatcher.stable_s = 0.5
    dispatcher.start()
    try:
        for _ in range(4):
            wait_until(lambda: dispatcher.stats.connected, 60, lambda: f"connected: {dispatcher.stats}")
            time.sleep(dispatcher.stable_s + 0.2)
            proxy.cut()
            wait_until(lambda: not dispatcher.stats.connected, 30, "the drop noticed")
        wait_until(lambda: dispatcher.stats.connected, 60, lambda: f"connected: {dispatcher.stats}")
    finally:
        dispatcher.stop()
        proxy.close()
        delete_node_topology(node_id)
    assert len(backoff.waits) == 4 and all(0.25 <= wait <= 0.5 for wait in backoff.waits), backoff.waits
    assert dispatcher.stats.reconnects == 4, dispatcher.stats


@pytest.mark.timeout(300)
@pytest.mark.parametrize("death", ["kill -9 of the consumer process", "its connection dropped"])
def test_a_consumer_that_dies_before_it_acks_loses_nothing(running: RunningNode, death: str):
    """Manual acks with a prefetch: what a consumer held unacked when it died goes to the next consumer,
    flagged redelivered; nothing is lost and nothing else is delivered twice."""
    key = Key()
    queue = set_up_exchange(running.channel_as, key)
    provider = provider_of(running, key, batches=20, size=50)
    provider.run()
    all_relayed(running, 20)
    prefetch = 5
    if death.startswith("kill"):
        consumer = ConsumerProcess(queue, prefetch)
        wait_until(lambda: len(consumer.received) >= prefetch, 60, consumer.describe)
        time.sleep(1.0)  # a consumer that does not ack gets no more than its prefetch
        held = [m["record_id"] for m in consumer.received]
        consumer.kill()
    else:
        proxy = Proxy()
        connection = pika.BlockingConnection(pika.URLParameters(proxy.url))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        held = []
        for method, properties, _body in channel.consume(queue, inactivity_timeout=30):
            assert method is not None, "no delivery within 30 s"
            held.append(properties.headers["x-exnode-record-id"])
            if len(held) == prefetch:
                break
        time.sleep(1.0)
        assert proxy.cut() == 1
        proxy.close()
        try:
            connection.process_data_events(time_limit=1)
        except pika.exceptions.AMQPError:
            pass  # the consumer's side of the dropped connection
    assert len(held) == prefetch and len(set(held)) == prefetch, held

    acknowledged = provider.acknowledged_ids()
    arrived = drain(queue, acknowledged)
    assert arrived.distinct == acknowledged and arrived.problems == []
    assert arrived.messages == 20 * 50 and arrived.duplicates() == 0, "a message was delivered twice to live consumers"
    assert arrived.redelivered_ids == set(held), (arrived.redelivered_ids, held)
