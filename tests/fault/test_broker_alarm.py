"""A RabbitMQ memory alarm (``rabbitmqctl set_vm_memory_high_watermark absolute 1``: every byte is over
the watermark) on a broker the test starts for itself. The broker blocks publishers
(``connection.blocked``); the node stays alive (liveness SERVING), turns not ready (readiness and broker
NOT_SERVING), keeps acknowledging ingest into its outbox, which grows and ages; once the alarm clears,
everything is delivered, each record once in effect."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pika
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.codecs import regional
from node.storage.database import make_engine
from node.storage.tables import outbox
from tests.fault.servers import RabbitCluster, rabbit_cluster
from tests.fault.support import (
    PROVIDER,
    Ingestor,
    Key,
    ServedNode,
    init_served_node,
    metric,
    set_up_exchange,
    threshold_alert,
    wait_until,
)

BATCH = 250
HOLD_S = float(os.environ.get("EXNODE_ALARM_HOLD_S", "4"))
"""How long the alarm holds after ingest; over 60 s, pika's blocked_connection_timeout drops the dispatcher's
connection while blocked and it reconnects into the same alarm; from 1,230 s (the rule's 900 s and 5 min,
and two scrapes) the outbox age alert must have fired."""
SCRAPE_S = 15.0
"""Prometheus's scrape interval in a long hold (a short one samples every second)."""


@pytest.fixture
def broker() -> Iterator[RabbitCluster]:
    with rabbit_cluster(1) as single:
        yield single


def health(node: ServedNode, service: str) -> int:
    with grpc.insecure_channel(node.address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=5).status


def consume(url: str, queue: str, ids: Counter[str], seconds: float) -> None:
    """Take what the queue holds for ``seconds`` (manual acks), noting record ids."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=500)
        end = time.monotonic() + seconds
        for method, _properties, body in channel.consume(queue, inactivity_timeout=0.3):
            if method is not None:
                ids.update(record.id for record in regional.decode(body).records)
                channel.basic_ack(method.delivery_tag)
            if time.monotonic() > end:
                break
        channel.cancel()


def pending(engine: Engine) -> tuple[int, float]:
    """Outbox rows not yet confirmed, and the age in seconds of the oldest."""
    with engine.connect() as connection:
        count, oldest = connection.execute(select(func.count(), func.min(outbox.c.created_at))
                                           .where(outbox.c.state == "PENDING")).one()
    if not count:
        return 0, 0.0
    return count, (datetime.now(UTC) - oldest.replace(tzinfo=oldest.tzinfo or UTC)).total_seconds()


@pytest.mark.timeout(600 + int(HOLD_S))
def test_a_broker_memory_alarm_blocks_relay_the_node_turns_not_ready_and_delivers_all_once_it_clears(
        tmp_path: Path, broker: RabbitCluster):
    node_name = broker.nodes[0]
    url = broker.urls[0]
    served = init_served_node(tmp_path, "m", {"EXNODE_RABBITMQ_URL": url})
    engine = None
    try:
        served.start()
        engine = make_engine(served.config.database_url)
        key = Key()
        queue = set_up_exchange(served.channel_as, key)
        ids: Counter[str] = Counter()
        before = Ingestor(lambda: served.channel_as(PROVIDER, ("provider",)), key, batches=8, size=BATCH,
                          tag=f"m0{uuid.uuid4().hex[:5]}").start()
        before.join(300)
        wait_until(lambda: pending(engine)[0] == 0, 300, "the outbox does not drain before the alarm")
        wait_until(lambda: health(served, "exnode.readiness") == health_pb2.HealthCheckResponse.SERVING, 120,
                   "the node is not ready before the alarm")

        broker.ctl(node_name, "set_vm_memory_high_watermark", "absolute", "1")
        alarm_at = time.monotonic()
        during = Ingestor(lambda: served.channel_as(PROVIDER, ("provider",)), key, batches=12, size=BATCH,
                          first=8 * BATCH + 1, tag=f"m1{uuid.uuid4().hex[:5]}").start()
        during.join(300)  # ingest goes on: the records wait in the outbox
        wait_until(lambda: health(served, "exnode.readiness") == health_pb2.HealthCheckResponse.NOT_SERVING, 120,
                   lambda: f"the node is still ready under a broker alarm: {served.log_tail(10)}")
        not_ready_s = time.monotonic() - alarm_at
        assert health(served, "exnode.liveness") == health_pb2.HealthCheckResponse.SERVING
        assert health(served, "") == health_pb2.HealthCheckResponse.SERVING  # it serves its RPCs

        # The alarm holds; the outbox age alert's rule, read from the shipped rules file, is evaluated on
        # the node's own metric as Prometheus would scrape it. Every pending row was written after the
        # alarm and before the hold, so its age is bounded both ways by the test's clock, however loaded.
        rule = threshold_alert("ExnodeOutboxOld")
        hold_from = time.monotonic()
        samples: list[tuple[float, float]] = []
        while True:
            asked = time.monotonic()
            value = metric(served, rule.metric)
            answered = time.monotonic()
            samples.append((answered, value))
            count, _ = pending(engine)
            assert count > 0, "the outbox emptied under the alarm"
            assert asked - hold_from - 1 <= value <= answered - alarm_at + 1, (
                f"{rule.metric}={value:.1f} is not the age of a row written between the alarm "
                f"({answered - alarm_at:.1f} s ago) and the hold ({asked - hold_from:.1f} s ago)")
            if answered - hold_from >= HOLD_S and len(samples) >= 3:
                break
            time.sleep(SCRAPE_S if HOLD_S > 60 else 1)
        age = samples[-1][1]
        fires_after_s = rule.threshold + rule.for_s - age + (samples[-1][0] - alarm_at)
        fired = rule.firing(samples)
        if HOLD_S >= rule.threshold + rule.for_s + 2 * SCRAPE_S:
            assert fired, f"{rule.name} has not fired after a {HOLD_S:.0f} s alarm: {samples[-5:]}"
        if age <= rule.threshold:
            assert not fired, f"{rule.name} fired below its threshold: {samples[-5:]}"
        consume(url, queue, ids, 2)
        blocked_delivered = len(set(ids) & during.acknowledged_ids())
        assert blocked_delivered < len(during.acknowledged_ids()), "the relay was not blocked"
        assert "blocks publishing" in served.log.read_text(encoding="utf-8")

        broker.ctl(node_name, "set_vm_memory_high_watermark", "0.4")
        cleared_at = time.monotonic()
        wait_until(lambda: pending(engine)[0] == 0, 300, lambda: f"the outbox does not drain: {pending(engine)}")
        drained_s = time.monotonic() - cleared_at
        wait_until(lambda: health(served, "exnode.readiness") == health_pb2.HealthCheckResponse.SERVING, 120,
                   "the node is not ready again after the alarm")
        acknowledged = before.acknowledged_ids() | during.acknowledged_ids()
        consume(url, queue, ids, 3)
        wait_until(lambda: (consume(url, queue, ids, 1), set(ids) >= acknowledged)[1], 180,
                   lambda: f"{len(acknowledged - set(ids))} acknowledged records not delivered")
        assert set(ids) == acknowledged
        print(f"\nbroker alarm: acknowledged={len(acknowledged)} delivered={len(set(ids))} lost=0 "
              f"duplicated_in_effect=0 (wire duplicates {sum(ids.values()) - len(ids)}); not ready "
              f"{not_ready_s:.1f} s after the alarm; outbox {count} rows, oldest {age:.0f} s old while blocked; "
              f"{rule.name} ({rule.metric} > {rule.threshold:.0f} for {rule.for_s:.0f} s) "
              f"{'fired' if fired else 'not yet firing'} after {samples[-1][0] - alarm_at:.0f} s, fires "
              f"{fires_after_s:.0f} s into such an alarm; "
              f"drained {drained_s:.1f} s after the alarm cleared")
        assert "Traceback" not in served.log.read_text(encoding="utf-8")
    finally:
        if engine is not None:
            engine.dispose()
        served.close()
