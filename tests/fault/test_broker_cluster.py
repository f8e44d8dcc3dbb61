"""DESIGN.md §10, §13: the loss of a broker machine. Three RabbitMQ nodes started by the test (their own
names, ports, data directories, cookie and epmd), clustered with ``rabbitmqctl join_cluster``, so that
the node's quorum queues have three replicas. `exnode serve` lists all three
(``rabbitmq.url`` + ``rabbitmq.urls``); its first address goes through a proxy to the first broker.
Every address names ``?heartbeat=5``: what bounds the time a silent partition goes unnoticed.

While 20,000 records are ingested and relayed, in three rounds:
1. the link between the node and the first broker is partitioned: the proxy stops forwarding, both ways,
   but closes nothing and still accepts, so the node learns of it only from missed heartbeats;
2. the broker node leading the subscriber's queue is killed with SIGKILL, then started again (it rejoins);
3. the broker node leading the queue then is killed too.

A subscriber consumes all along from whichever broker answers (manual acks, reconnecting). Counted:
acknowledged by Ingest, delivered, lost (must be 0), duplicated in effect after dedup by record id (must be
0: every record stored once, the subscriber's set of ids equals the acknowledged set); and, per round, the
time from the fault until records reach the subscriber again."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
from sqlalchemy import func, select

from adapters.codecs import regional
from node.config import load_config
from node.storage.database import make_engine
from node.storage.tables import records
from tests.fault.servers import RabbitCluster, rabbit_cluster
from tests.fault.support import (
    PROVIDER,
    Ingestor,
    Key,
    Proxy,
    ServedNode,
    init_served_node,
    outbox_states,
    set_up_exchange,
    wait_until,
)

BATCH = 250
ROUNDS = (("partition", 28), ("kill the leader", 26), ("kill the next leader", 26))
"""Each round: its fault and the batches ingested in it (80 batches, 20,000 records in all)."""
HEARTBEAT_S = 5
"""The node's AMQP heartbeat (in its broker URLs): pika gives up on a silent link after 10-20 s (one to two
checks of heartbeat + 5 s)."""
PACE_S = 0.1
"""The provider's pause between batches (at most 2,500 records/s): the relay is still running at the fault."""


class Subscriber:
    """The platform's consumer: manual acks after it noted the ids, reconnecting to any broker."""

    def __init__(self, urls: list[str], queue: str) -> None:
        self.urls = urls
        self.queue = queue
        self.ids: Counter[str] = Counter()
        self.arrived_at: dict[str, float] = {}
        """Record id → monotonic time it first arrived."""
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = len(self.urls) - 1  # the last broker first: the first round partitions the first one
        while not self._stop.is_set():
            params = pika.URLParameters(self.urls[index])
            params.connection_attempts, params.socket_timeout, params.heartbeat = 1, 3, 10
            try:
                with pika.BlockingConnection(params) as connection:
                    channel = connection.channel()
                    channel.basic_qos(prefetch_count=500)
                    for method, _properties, body in channel.consume(self.queue, inactivity_timeout=0.2):
                        if self._stop.is_set():
                            break
                        if method is None:
                            continue
                        ids = [record.id for record in regional.decode(body).records]
                        now = time.monotonic()
                        for record_id in ids:
                            self.arrived_at.setdefault(record_id, now)
                        self.ids.update(ids)
                        channel.basic_ack(method.delivery_tag)
            except (pika.exceptions.AMQPError, OSError):
                self.reconnects += 1
                index = (index + 1) % len(self.urls)
                time.sleep(0.3)

    def first_arrival(self, ids: set[str]) -> float:
        return min(self.arrived_at[record_id] for record_id in ids)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture
def cluster() -> Iterator[RabbitCluster]:
    with rabbit_cluster(3) as brokers:
        yield brokers


def one_round(served: ServedNode, cluster: RabbitCluster, link: Proxy, subscriber: Subscriber, key: Key,
              queue: str, *, fault: str, batches: int, first: int, last: bool, already: set[str]
              ) -> tuple[set[str], str]:
    """Ingest ``batches`` batches; once the relay of them runs, the fault; everything delivered; the fault
    undone (the link restored, the killed broker started again unless it is the last round)."""
    leader = cluster.queue_leader(queue)  # asked before: rabbitmqctl takes seconds to answer
    provider = Ingestor(lambda: served.channel_as(PROVIDER, ("provider",)), key, batches=batches, size=BATCH,
                        first=first, tag=f"c{first}-{uuid.uuid4().hex[:5]}", pace_s=PACE_S).start()
    wait_until(lambda: len(provider.answered) >= 8 or provider.failure, 240,
               lambda: f"{fault}: {len(provider.answered)} batches answered")
    wait_until(lambda: len(subscriber.ids) > len(already), 120, f"{fault}: the relay has not started")
    assert not provider.answered or len(provider.answered) < batches, f"{fault}: ingest ended before the fault"
    at, answered_at_fault = time.monotonic(), len(provider.answered)
    if fault == "partition":
        link.stall()
    else:
        cluster.kill(leader)
    provider.join(300)
    acknowledged = already | provider.acknowledged_ids()
    wait_until(lambda: set(subscriber.ids) >= acknowledged, 240,
               lambda: f"{fault}: {len(acknowledged - set(subscriber.ids))} of {len(acknowledged)} acknowledged "
                       f"records not delivered; outbox {outbox_states(make_engine(served.config.database_url))}")
    # Relay resumed: the first record of a batch sent after the fault (the next but one) reaches the subscriber.
    later = {f"DB-{n:06d}" for index in range(answered_at_fault + 2, batches) for n in provider.record_numbers(index)}
    assert later, f"{fault}: no batch was ingested after the fault"
    resumed = subscriber.first_arrival(later) - at
    recovery = (f"{fault} (queue leader {leader}, at batch {answered_at_fault}/{batches}): relay resumed after "
                f"{resumed:.1f} s (first record ingested after the fault delivered; includes ~{2 * PACE_S:.1f} s "
                f"of the provider's pace), {len(provider.interruptions)} ingest interruptions")
    if fault == "partition":
        assert link.cuts == 0, "the proxy closed a connection: not a silent partition"
        detected = served.log.read_text(encoding="utf-8", errors="replace").count("AMQPHeartbeatTimeout")
        assert detected, f"no worker of the node saw its heartbeats missed: {served.log_tail()}"
        recovery += f"; {detected} log lines of broker links given up on missed heartbeats"
        link.flow()
    elif not last:
        cluster.restart(leader)  # it rejoins before the next node is lost
    return provider.acknowledged_ids(), recovery


@pytest.mark.timeout(900)
def test_a_broker_node_lost_twice_and_a_partition_mid_relay_lose_no_acknowledged_record(tmp_path: Path,
                                                                                         cluster: RabbitCluster):
    link = Proxy(("127.0.0.1", cluster.ports[cluster.nodes[0]]))
    addresses = [f"{url}?heartbeat={HEARTBEAT_S}" for url in (link.url, *cluster.urls[1:])]
    served = init_served_node(tmp_path, "c", {"EXNODE_RABBITMQ_URL": addresses[0],
                                              "EXNODE_RABBITMQ_URLS": ",".join(addresses[1:])})
    subscriber: Subscriber | None = None
    try:
        served.start()
        assert served.config.rabbitmq.addresses == tuple(addresses)
        key = Key()
        queue = set_up_exchange(served.channel_as, key)
        members = cluster.ctl(cluster.nodes[1], "list_queues", "name", "members", "--formatter", "json", "--quiet")
        assert all(node in members for node in cluster.nodes), f"{queue} is not on three nodes: {members}"
        subscriber = Subscriber(cluster.urls, queue)
        acknowledged: set[str] = set()
        recoveries: list[str] = []
        first = 1
        for number, (fault, batches) in enumerate(ROUNDS, start=1):
            ids, recovery = one_round(served, cluster, link, subscriber, key, queue, fault=fault, batches=batches,
                                      first=first, last=number == len(ROUNDS), already=acknowledged)
            acknowledged |= ids
            recoveries.append(recovery)
            first += batches * BATCH

        subscriber.stop()
        delivered = set(subscriber.ids)
        lost = acknowledged - delivered
        engine = make_engine(load_config(served.data, environ={}).database_url)
        try:
            with engine.connect() as connection:
                stored = connection.execute(select(func.count(), func.count(records.c.record_id.distinct()))
                                            .select_from(records)).one()
        finally:
            engine.dispose()
        print(f"\nbroker cluster: acknowledged={len(acknowledged)} delivered={len(delivered & acknowledged)} "
              f"lost={len(lost)} duplicated_in_effect={stored[0] - stored[1]} "
              f"(wire duplicates {sum(subscriber.ids.values()) - len(subscriber.ids)}, "
              f"subscriber reconnects {subscriber.reconnects})")
        for line in recoveries:
            print(f"  {line}")
        assert len(acknowledged) == sum(batches for _, batches in ROUNDS) * BATCH
        assert not lost, f"{len(lost)} acknowledged records lost"
        assert delivered == acknowledged, "records nobody acknowledged arrived"
        assert stored[0] == stored[1] == len(acknowledged), f"stored {stored[0]} rows for {stored[1]} ids"
    finally:
        if subscriber is not None:
            subscriber.stop()
        served.close()
        link.close()
