"""Health per dependency (issue 7): a node whose broker is gone is alive, not ready to relay, and still
serves the catalog and takes records into its outbox; when the broker is back it is ready again and the
outbox drains. The shared broker is never stopped: the node reaches it through a gate the test shuts."""

from __future__ import annotations

import queue
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import catalog_pb2, catalog_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.observed import MetricsNode
from tests.fault.support import (
    EXNODE,
    LOW_INCOME,
    PROVIDER,
    Ingestor,
    Key,
    Proxy,
    delete_node_topology,
    drain,
    exnode,
    out_queue,
    platforms_toml,
    set_up_exchange,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq]


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[MetricsNode, Proxy]]:
    """`exnode serve` whose rabbitmq.url goes through a gate, with one regional platform."""
    data = tmp_path / "node"
    node_id = f"t{uuid.uuid4().hex[:10]}"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id)
    assert init.returncode == 0, init.stderr
    gate = Proxy()
    config = data / "exnode.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        'url = "amqp://guest:guest@127.0.0.1:5672/%2F"', f'url = "{gate.url}"'), encoding="utf-8")
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    node = MetricsNode(data, tmp_path / "serve.log")
    try:
        node.start()
        yield node, gate
    finally:
        node.close()
        gate.close()
        delete_node_topology(node_id)


def statuses(node: MetricsNode) -> dict[str, str]:
    return {name: node.health(name) for name in ("", "exnode.liveness", "exnode.readiness", "exnode.database",
                                                 "exnode.broker")}


def test_a_node_without_its_broker_is_alive_not_ready_and_serves_until_the_broker_returns(gated):
    node, gate = gated
    wait_until(lambda: node.health("exnode.readiness") == "SERVING", 60, lambda: f"not ready: {statuses(node)}")
    key = Key()
    queue = set_up_exchange(node.channel_as, key)
    assert queue == out_queue(node.node_id)

    gate.close()
    wait_until(lambda: node.health("exnode.broker") == "NOT_SERVING", 60, lambda: f"broker still: {statuses(node)}")
    assert statuses(node) == {"": "SERVING", "exnode.liveness": "SERVING", "exnode.readiness": "NOT_SERVING",
                              "exnode.database": "SERVING", "exnode.broker": "NOT_SERVING"}
    # still serves: the catalog, and records are accepted into the outbox
    catalog = catalog_pb2_grpc.CatalogServiceStub(node.channel_as(PROVIDER, ("catalog_admin",)))
    assert catalog.GetResource(catalog_pb2.GetResourceRequest(code=LOW_INCOME), timeout=30).code == LOW_INCOME
    provider = Ingestor(lambda: node.channel_as(PROVIDER, ("provider",)), key, batches=3, size=20,
                        tag=f"h{uuid.uuid4().hex[:6]}", deadline_s=120).start()
    provider.join(180)
    assert node.sample("exnode_outbox_pending_messages") == 3
    assert node.sample("exnode_broker_connected") == 0
    assert node.sample("exnode_records_stored_total") == 60
    cli = subprocess.run([*EXNODE, "health", "--server", node.address], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "exnode.readiness  NOT_SERVING" in cli.stdout, cli.stdout + cli.stderr

    gate.open()
    wait_until(lambda: node.health("exnode.readiness") == "SERVING", 90, lambda: f"not ready again: {statuses(node)}")
    assert node.health("exnode.broker") == "SERVING"
    delivered = drain(queue, provider.acknowledged_ids(), timeout=120)
    assert delivered.distinct == provider.acknowledged_ids()
    wait_until(lambda: node.sample("exnode_outbox_pending_messages") == 0, 60, "the outbox did not drain")
    assert node.sample("exnode_relay_messages_confirmed_total") >= 3


def test_health_watch_streams_the_broker_going_away_and_coming_back(gated):
    """The standard Watch (client-side health checking, many probes) through the node's interceptors: it
    used to end at once with UNKNOWN ('async for' requires an object with __aiter__ method)."""
    node, gate = gated
    wait_until(lambda: node.health("exnode.broker") == "SERVING", 60, lambda: f"broker: {statuses(node)}")
    channel = grpc.insecure_channel(node.address)
    seen: queue.Queue = queue.Queue()
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="exnode.broker"),
                                                      timeout=180)

    def follow() -> None:
        try:
            for response in watch:
                seen.put(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
        except grpc.RpcError as error:
            seen.put(error.code().name)

    threading.Thread(target=follow, daemon=True).start()
    try:
        assert seen.get(timeout=30) == "SERVING"
        gate.close()
        assert seen.get(timeout=60) == "NOT_SERVING"
        gate.open()
        assert seen.get(timeout=60) == "SERVING"
    finally:
        watch.cancel()
        channel.close()
