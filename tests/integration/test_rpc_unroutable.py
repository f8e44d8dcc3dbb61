"""A request to a node whose request queue does not exist on the broker comes back at once (mandatory
publish, basic.return) instead of being dropped by the default exchange and waited on until the deadline."""

from __future__ import annotations

import threading
import uuid

import pika
import pytest

from adapters.rabbit.rpc import RpcClient, RpcResponder, Unroutable, reply_queue, rpc_queue
from tests.fault.support import AMQP

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def client():
    node_id = f"ur{uuid.uuid4().hex[:8]}"
    returned: list[tuple[str, str]] = []
    arrived = threading.Event()

    def on_return(correlation: str, reason: str) -> None:
        returned.append((correlation, reason))
        arrived.set()

    rpc = RpcClient(AMQP, node_id, on_return=on_return)
    rpc.start()
    yield rpc, returned, arrived
    rpc.stop()
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        channel.queue_delete(reply_queue(node_id))
        channel.queue_delete(f"exnode.{node_id}.dlq")
        channel.exchange_delete(f"exnode.{node_id}.dlx")


def test_a_call_to_a_node_without_a_request_queue_fails_unroutable_naming_the_queue(client):
    rpc, returned, _ = client
    missing = f"never-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Unroutable) as refused:
        rpc.call(missing, b"{}", timeout=120)  # a TimeoutError here would mean the request was dropped silently
    assert rpc_queue(missing) in str(refused.value) and "not delivered" in str(refused.value)
    assert isinstance(refused.value, ConnectionError)  # callers answer UNAVAILABLE, as for a lost broker
    assert not returned  # the waiting caller got it, not the fallback


def test_a_sent_request_nobody_waits_for_is_handed_to_on_return(client):
    rpc, returned, arrived = client
    missing = f"never-{uuid.uuid4().hex[:8]}"
    rpc.send(missing, b"{}", "check:HC-1:" + missing)
    assert arrived.wait(60), "the broker's return never reached on_return"
    assert returned[0][0] == "check:HC-1:" + missing and rpc_queue(missing) in returned[0][1]


def test_a_request_to_a_live_node_is_answered_as_before(client):
    rpc, returned, _ = client
    answering = f"ua{uuid.uuid4().hex[:8]}"
    responder = RpcResponder(AMQP, answering, lambda body: b"answer:" + body)
    responder.start()
    try:
        for _ in range(100):  # until the responder has declared its queue
            try:
                assert rpc.call(answering, b"ping", timeout=60) == b"answer:ping"
                break
            except Unroutable:
                threading.Event().wait(0.1)
        else:
            raise AssertionError("the responder never declared its queue")
    finally:
        responder.stop()
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
            channel = connection.channel()
            for queue in (rpc_queue(answering), f"exnode.{answering}.dlq"):
                channel.queue_delete(queue)
            channel.exchange_delete(f"exnode.{answering}.dlx")
    assert not returned
