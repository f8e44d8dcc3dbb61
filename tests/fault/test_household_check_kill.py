"""A household check survives kill -9 of the requesting node: every answer the broker delivered before
the kill is kept (acked after commit), and an answer that arrives while the node is down is taken when it
comes back; the pending target goes on."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import uuid
from pathlib import Path

import pika
from exnode.v1 import checks_pb2 as pb
from exnode.v1 import checks_pb2_grpc

from adapters.responder import Responder
from tests.fault.support import AMQP, CONSUMER, ServedNode, exnode, wait_until

WANG = "360426199101010071"


def test_kill_during_a_check_keeps_delivered_answers_and_pending_targets_go_on(tmp_path: Path):
    suffix = uuid.uuid4().hex[:8]
    node_id, fast, slow = f"fhc{suffix}", f"bank-{suffix}", f"zjt-{suffix}"
    data = tmp_path / "node"
    init = exnode("init", "--data", str(data), "--dev", "--node-id", node_id)
    assert init.returncode == 0, init.stderr
    responders = [Responder(AMQP, fast, {"members": {WANG: {"存款余额": 52000.5}}}, tmp_path / fast),
                  Responder(AMQP, slow, {"members": {WANG: {"房产套数": 1}}, "delay_s": 8}, tmp_path / slow)]
    (data / "peers").mkdir()
    for name in (fast, slow):
        shutil.copy(tmp_path / name / "public-keys.json", data / "peers" / f"{name}.json")
    threads = [threading.Thread(target=r.run, daemon=True) for r in responders]
    for thread in threads:
        thread.start()
    node = ServedNode(data, tmp_path / "serve.log")
    try:
        node.start()
        stub = checks_pb2_grpc.CheckServiceStub(node.channel_as(CONSUMER, ("consumer",)))
        request = pb.FileCheckRequest(members=[pb.HouseholdMember(id_number=WANG, name="王芳")], purpose="低保核对",
                                      authorisation="SQ2026-9", targets=[pb.CheckTargetRef(name=fast, category="银行"),
                                                                         pb.CheckTargetRef(name=slow, category="住建/房产")])
        request.deadline.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)).replace(tzinfo=None))
        check_id = stub.FileCheck(request, timeout=30).id

        def states() -> dict[str, str]:
            check = checks_pb2_grpc.CheckServiceStub(node.channel_as(CONSUMER, ("consumer",))).GetCheck(
                pb.GetCheckRequest(id=check_id), timeout=30)
            return {t.name: t.state for t in check.targets}

        wait_until(lambda: states()[fast] == "ANSWERED", 60, lambda: f"states {states()}")
        assert states()[slow] == "PENDING"
        node.kill()
        wait_until(lambda: responders[1].answered == 1, 60, "the slow target answered while the node was down")
        time.sleep(0.5)
        node.start()
        wait_until(lambda: states() == {fast: "ANSWERED", slow: "ANSWERED"}, 60, lambda: f"states {states()}")
    finally:
        node.close()
        for responder in responders:
            responder.stop()
        for thread in threads:
            thread.join(10)
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
            channel = connection.channel()
            for queue in (f"exnode.{node_id}.rpc", f"exnode.{node_id}.rpc-reply", f"exnode.{node_id}.dlq",
                          f"exnode.{node_id}.in", f"exnode.{fast}.rpc", f"exnode.{slow}.rpc"):
                channel.queue_delete(queue)
            channel.exchange_delete(f"exnode.{node_id}.dlx")
