"""A dead or stuck background worker turns liveness NOT_SERVING (issue 13): the node then answers health
checks truthfully instead of looking well while every call waits for an audit entry nobody writes."""

from __future__ import annotations

import ctypes
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import grpc
import psycopg
import pytest
from exnode.v1 import catalog_pb2, catalog_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from node.grpc.server import SERVICES, _status_name
from node.ops.health import LIVENESS, READINESS, HealthMonitor
from tests.integration.grpc_node import RunningNode, make_config


def kill_thread(thread: threading.Thread) -> None:
    """Raise SystemExit inside ``thread``: what a bug escaping every handler does to a worker."""
    assert thread.ident is not None
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
    assert done == 1
    thread.join(10)
    assert not thread.is_alive()


def liveness(running: RunningNode) -> str:
    status = health_pb2_grpc.HealthStub(running.raw_channel).Check(
        health_pb2.HealthCheckRequest(service=LIVENESS), timeout=10).status
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def worker_up(name: str) -> float | None:
    return REGISTRY.get_sample_value("exnode_worker_up", {"worker": name})


@pytest.fixture
def running(tmp_path: Path, request: pytest.FixtureRequest):
    url = request.getfixturevalue("postgres_url") if "postgres" in request.keywords else ""
    node = RunningNode(make_config(tmp_path / "node", url, worker_stall_s=2.0))
    try:
        yield node
    finally:
        node.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_killed_audit_writer_turns_liveness_not_serving_and_calls_fail_fast(running):
    monitor = HealthMonitor(running.node, running.health, SERVICES)
    state = running.run(monitor.check())
    assert state[LIVENESS] is True
    assert liveness(running) == "SERVING" and worker_up("audit_writer") == 1

    kill_thread(running.node.audit_writer._thread)
    state = running.run(monitor.check())
    assert state[LIVENESS] is False and state[READINESS] is False
    assert liveness(running) == "NOT_SERVING"
    assert worker_up("audit_writer") == 0
    # A call is refused at once (it cannot be audited), not left waiting for its deadline.
    catalog = catalog_pb2_grpc.CatalogServiceStub(running.channel)
    with pytest.raises(grpc.RpcError) as refused:
        catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=20)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "audit writer" in refused.value.details()


@pytest.mark.postgres
def test_a_stuck_audit_writer_turns_liveness_not_serving_until_it_moves_again(running):
    """The writer waits on a row lock another session holds (a database that stopped answering looks the
    same): its beat goes stale, liveness says so, and once the lock goes the waiting call is answered."""
    monitor = HealthMonitor(running.node, running.health, SERVICES)
    assert running.run(monitor.check())[LIVENESS] is True
    url = running.config.database_url.replace("postgresql+psycopg", "postgresql")
    catalog = catalog_pb2_grpc.CatalogServiceStub(running.channel)
    with psycopg.connect(url) as blocker:
        blocker.execute("SELECT * FROM audit_head WHERE id = 1 FOR UPDATE")
        waiting = catalog.ListResources.future(catalog_pb2.ListResourcesRequest(), timeout=60)
        deadline = time.monotonic() + 20
        while running.run(monitor.check())[LIVENESS] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert liveness(running) == "NOT_SERVING"
        assert worker_up("audit_writer") == 0
        assert not waiting.done()
        blocker.rollback()
    assert waiting.result(timeout=30) is not None
    deadline = time.monotonic() + 20
    while not running.run(monitor.check())[LIVENESS] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert liveness(running) == "SERVING" and worker_up("audit_writer") == 1


@pytest.mark.rabbitmq
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_dispatcher_thread_turns_liveness_not_serving(running):
    dispatcher = running.node.start_dispatcher(process=False)
    monitor = HealthMonitor(running.node, running.health, SERVICES)
    deadline = time.monotonic() + 30
    while not running.run(monitor.check())[LIVENESS] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_up("dispatcher") == 1
    kill_thread(dispatcher._thread)
    assert running.run(monitor.check())[LIVENESS] is False
    assert liveness(running) == "NOT_SERVING" and worker_up("dispatcher") == 0


def readiness(running: RunningNode) -> str:
    status = health_pb2_grpc.HealthStub(running.raw_channel).Check(
        health_pb2.HealthCheckRequest(service=READINESS), timeout=10).status
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


@pytest.mark.rabbitmq
def test_readiness_waits_until_the_request_and_reply_queues_are_consumed(tmp_path: Path):
    """A request of another node reaches this one only once its responder consumes exnode.<node>.rpc
    (before, the broker returns it as unroutable): until then the node is alive but not ready. Here the
    request queue exists with other arguments (a queue an operator declared by hand), so the responder's
    declaration is refused and it keeps retrying; once the queue goes, it consumes and readiness follows."""
    import pika

    from adapters.rabbit.rpc import rpc_queue

    config = make_config(tmp_path / "node")
    config = replace(config, node=replace(config.node, id=f"ready{uuid.uuid4().hex[:8]}"))
    queue = rpc_queue(config.node.id)
    with pika.BlockingConnection(pika.URLParameters(config.rabbitmq.url)) as connection:
        connection.channel().queue_declare(queue, durable=False)
    running = RunningNode(config)
    try:
        monitor = HealthMonitor(running.node, running.health, SERVICES)
        running.node.start_rpc(_status_name)
        deadline = time.monotonic() + 20
        while not running.node.rpc_client.stats.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        state = running.run(monitor.check())
        assert state[LIVENESS] is True and state[READINESS] is False
        assert readiness(running) == "NOT_SERVING" and liveness(running) == "SERVING"

        with pika.BlockingConnection(pika.URLParameters(config.rabbitmq.url)) as connection:
            connection.channel().queue_delete(queue)
        deadline = time.monotonic() + 60
        while not running.run(monitor.check())[READINESS] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert readiness(running) == "SERVING"
        assert running.node.rpc_responder.stats.connected
    finally:
        running.close()
        with pika.BlockingConnection(pika.URLParameters(config.rabbitmq.url)) as connection:
            channel = connection.channel()
            for name in (queue, f"exnode.{config.node.id}.rpc-reply", f"exnode.{config.node.id}.dlq"):
                channel.queue_delete(name)
            channel.exchange_delete(f"exnode.{config.node.id}.dlx")
