"""The answering node of a cross-node request killed (kill -9) on the real broker: a request it was in the
middle of (held at its database write) is redelivered after the restart and answered once; an answer it had
stored survives the kill (the same request again gets the same bytes, no second verification); a request
whose deadline passed while the node was down is answered DEADLINE_EXCEEDED and never processed."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pika
from exnode.v1 import exchange_pb2 as xpb
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc

from adapters.rabbit.rpc import rpc_queue
from catalog.records import Record
from node.pipeline import provider_batch
from node.services.remote import ANSWER_CONTEXT, REQUEST_CONTEXT, _open, _sign
from security.keys import KeyStore, read_public_keys
from tests.fault.support import (
    AMQP,
    CONSUMER,
    LOW_INCOME,
    PROVIDER,
    Key,
    ServedNode,
    as_proto,
    exnode,
    low_income_record,
    wait_until,
)

WANG = "360426199101010071"


def _prepare(node: ServedNode) -> str:
    """One 低保 record for WANG and a verification grant of 姓名 for the consumer; returns the grant id."""
    key = Key()
    admin = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ("catalog_admin",)))
    key.kid = admin.RegisterKey(xpb.RegisterKeyRequest(department_code=PROVIDER, algorithm="Ed25519",
                                                       public_pem=key.pem), timeout=30).key_id
    record = low_income_record(1)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ("provider",)))
    provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [Record(
        record.id, 1, record.operation, {**record.payload, "公民身份号码": WANG, "姓名": "王芳"})], key)), timeout=30)
    consumer = lists_pb2_grpc.ListsServiceStub(node.channel_as(CONSUMER, ("consumer",)))
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ("reviewer",)))
    filed = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格核验", legal_basis="社会救助暂行办法", contact="王芳",
        items=["姓名"], kind="VERIFY")), timeout=30)
    return reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=filed.id, approve=True), timeout=30).grant_id


class Requester:
    """The asking node's side, by hand: signed requests onto the answerer's queue, replies on its own queue."""

    def __init__(self, node_id: str, keys: KeyStore, target: str, target_keys: Path) -> None:
        self.node_id, self.keys, self.target, self.target_keys = node_id, keys, target, target_keys
        self.peers = {target: read_public_keys(target_keys)}
        self.connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        self.channel = self.connection.channel()
        self.reply_to = self.channel.queue_declare("", exclusive=True).method.queue
        self.replies: dict[str, list[bytes]] = {}

    def request(self, deadline: dt.datetime) -> bytes:
        return _sign(REQUEST_CONTEXT, {
            "format": "exnode-rpc/1", "id": uuid.uuid4().hex, "kind": "verify", "from": self.node_id,
            "to": self.target, "deadline": deadline.isoformat(), "hops": [self.node_id], "consumer": CONSUMER,
            "subject": "fault-test", "roles": ["consumer"], "resource": LOW_INCOME, "key": {"公民身份号码": WANG},
            "claims": [{"item": "姓名", "value": "王芳"}]}, self.keys.active, "request")

    def send(self, body: bytes) -> None:
        """Sealed to the answerer (``exnode-sealed/1``), as a node sends it; its answer comes sealed back."""
        import json

        from security.broker_sealing import load_peer_keys, seal_message

        key = load_peer_keys({self.target: json.loads(self.target_keys.read_text(encoding="utf-8"))})[self.target]
        body = seal_message(body, self.target, key)
        self.channel.basic_publish("", rpc_queue(self.target), body, pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, reply_to=self.reply_to, correlation_id=uuid.uuid4().hex))

    def collect(self) -> None:
        while True:
            method, _, body = self.channel.basic_get(self.reply_to, auto_ack=True)
            if method is None:
                return
            from security.broker_sealing import node_key, open_message

            body = open_message(body, self.node_id, node_key(self.keys))
            self.replies.setdefault(_open(ANSWER_CONTEXT, body, "answer", {})[0]["id"], []).append(body)

    def answers(self, body: bytes) -> list[dict]:
        """The checked answers received so far to one request."""
        self.collect()
        request_id = _open(REQUEST_CONTEXT, body, "request", {})[0]["id"]
        opened = [_open(ANSWER_CONTEXT, reply, "answer", self.peers) for reply in self.replies.get(request_id, [])]
        assert all(problem is None for _, problem in opened), opened
        return [answer for answer, _ in opened]

    def ready(self) -> int:
        return self.channel.queue_declare(rpc_queue(self.target), passive=True).method.message_count


def test_answering_node_killed_mid_request_answers_it_once_after_restart(tmp_path: Path):
    suffix = uuid.uuid4().hex[:8]
    answerer_id, requester_id = f"fan{suffix}", f"frq{suffix}"
    data, asking = tmp_path / "answerer", tmp_path / "requester"
    for directory, node_id, extra in ((data, answerer_id, ("--dev", "--sample")), (asking, requester_id, ())):
        init = exnode("init", "--data", str(directory), "--node-id", node_id, *extra)
        assert init.returncode == 0, init.stderr
    (data / "peers").mkdir()
    shutil.copy(asking / "keys" / "public-keys.json", data / "peers" / f"{requester_id}.json")
    node = ServedNode(data, tmp_path / "serve.log")
    requester: Requester | None = None
    try:
        node.start()
        _prepare(node)
        requester = Requester(requester_id, KeyStore.load(asking / "keys"), answerer_id,
                              data / "keys" / "public-keys.json")
        far = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)

        stored = requester.request(far)
        requester.send(stored)
        wait_until(lambda: requester.answers(stored), 60, lambda: f"no answer: {node.log_tail()}")
        (first,) = requester.answers(stored)
        assert first["status"] == "OK" and first["used_today"] == 1

        database = node.config.database_url.removeprefix("sqlite:///")
        lock = sqlite3.connect(database, timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the node's next write waits here: the request stays mid-way
        held = requester.request(far)
        requester.send(held)
        wait_until(lambda: requester.ready() == 0, 60, "the held request was not delivered to the node")
        time.sleep(1.0)
        assert requester.answers(held) == []
        node.kill()
        lock.execute("ROLLBACK")
        lock.close()

        expiring = requester.request(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
        requester.send(expiring)
        requester.send(stored)  # the same request again (a redelivery): the stored answer
        time.sleep(1.5)  # the expiring request's deadline passes while the node is down
        node.start()
        wait_until(lambda: requester.answers(held) and requester.answers(expiring) and len(
            requester.answers(stored)) == 2, 90, lambda: f"answers {requester.replies}: {node.log_tail()}")
        (after_kill,) = requester.answers(held)
        assert after_kill["status"] == "OK" and after_kill["used_today"] == 2  # processed once, after the restart
        (late,) = requester.answers(expiring)
        assert late["status"] == "DEADLINE_EXCEEDED" and "verdict" not in late
        again = requester.replies[first["id"]]
        assert again[0] == again[1]  # byte for byte: the answer stored before the kill

        probe = requester.request(far)
        requester.send(probe)
        wait_until(lambda: requester.answers(probe), 60, "no answer to the probe")
        assert requester.answers(probe)[0]["used_today"] == 3  # the expired and the repeated request counted nothing
        time.sleep(1.0)
        assert len(requester.answers(held)) == 1  # answered once
    finally:
        if requester is not None:
            requester.connection.close()
        node.close()
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
            channel = connection.channel()
            for queue in ("rpc", "rpc-reply", "dlq", "in"):
                channel.queue_delete(f"exnode.{answerer_id}.{queue}")
            channel.exchange_delete(f"exnode.{answerer_id}.dlx")
