"""The catalog feed on the real broker: published and retired events (never drafts) reach a queue bound to
the node's fanout exchange exnode.<node>.catalog, with their position for deduplication; a restarted
publisher goes on from its confirmed cursor."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc

from node.grpc import convert
from tests.conftest import resource
from tests.integration.grpc_node import RunningNode, make_config

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[tuple[RunningNode, str]]:
    node_id = f"t{uuid.uuid4().hex[:10]}"
    config = make_config(tmp_path / "node", database_url)
    running = RunningNode(replace(config, node=replace(config.node, id=node_id)))
    exchange, queue = f"exnode.{node_id}.catalog", f"exnode.{node_id}.catalog-test"
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()  # a partner department binds its own queue to the exchange
        channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange)
    running.node.start_fanout()
    yield running, queue
    running.close()
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(exchange)


def receive(queue: str, expected: int, timeout: float = 30.0) -> list[tuple[dict, dict, str]]:
    """(headers, body, message id) of the next ``expected`` messages, acked."""
    out: list[tuple[dict, dict, str]] = []
    deadline = time.monotonic() + timeout
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        while len(out) < expected and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue)
            if method is None:
                time.sleep(0.05)
                continue
            out.append((dict(properties.headers or {}), json.loads(body), properties.message_id))
            channel.basic_ack(method.delivery_tag)
    return out


def test_published_and_retired_events_reach_the_fanout_exchange_drafts_never(node: tuple[RunningNode, str]):
    running, queue = node
    admin = catalog_pb2_grpc.CatalogServiceStub(running.channel)

    def create(code: str, **changes: object) -> None:
        admin.CreateResource(pb.CreateResourceRequest(metadata=convert.metadata_to_proto(resource(code, **changes))))

    create("311140001/000001")
    admin.PublishResource(pb.PublishResourceRequest(code="311140001/000001"))
    admin.UpdateResource(pb.UpdateResourceRequest(metadata=convert.metadata_to_proto(
        resource("311140001/000001", name="草稿名称"))))
    create("311140001/000002")  # a draft: never on the exchange
    admin.RetireResource(pb.RetireResourceRequest(code="311140001/000001"))
    create("311140001/000003")
    admin.PublishResource(pb.PublishResourceRequest(code="311140001/000003"))

    messages = receive(queue, 3)
    assert [(b["kind"], b["code"]) for _, b, _ in messages] == [
        ("PUBLISHED", "311140001/000001"), ("RETIRED", "311140001/000001"), ("PUBLISHED", "311140001/000003")]
    assert all(b["name"] != "草稿名称" for _, b, _ in messages)
    positions = [h["x-exnode-position"] for h, _, _ in messages]
    assert positions == sorted(set(positions)) == [b["position"] for _, b, _ in messages]
    node_id = running.config.node.id
    assert [m for _, _, m in messages] == [f"{node_id}:catalog:{p}" for p in positions]
    assert all(h["x-exnode-node"] == node_id for h, _, _ in messages)

    running.node.fanout.stop()  # the publisher goes away; the catalog changes meanwhile; it comes back
    admin.PublishResource(pb.PublishResourceRequest(code="311140001/000002"))
    running.node.start_fanout()
    create("311140001/000004")
    admin.PublishResource(pb.PublishResourceRequest(code="311140001/000004"))
    after = receive(queue, 2)
    assert [(b["kind"], b["code"]) for _, b, _ in after] == [
        ("PUBLISHED", "311140001/000002"), ("PUBLISHED", "311140001/000004")]
    assert after[0][0]["x-exnode-position"] > positions[-1]  # from its confirmed cursor: nothing sent twice
