"""What the fault tests share: a provider that keeps streaming signed batches across failures and
resumes from the first batch the node did not answer, a real `exnode serve` process that can be killed,
and a subscriber that drains a platform queue and says which record ids arrived."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pika
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.codecs import envelope as envelopes
from adapters.codecs import regional
from catalog.records import Operation, Record
from node.config import Config, load_config
from node.pipeline import IncomingBatch, provider_batch
from node.storage.tables import outbox
from security.identity import issue_dev_token
from tests.integration.grpc_node import BearerInterceptor

PROVIDER = "11100000MB01284764"  # 民政部社会救助司
CONSUMER = "11150100011627354Q"  # 呼和浩特市民政局
LOW_INCOME = "311140001/000001"  # 城乡最低生活保障对象信息 (有条件共享)
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
PLATFORM = "hhht"
EXNODE = [sys.executable, "-m", "node.cli"]
RETRIED = (grpc.StatusCode.UNAVAILABLE,)
"""What a provider retries: the node is down or restarting. Anything else is a failure of the test."""


def platforms_toml() -> str:
    return f'[[platform]]\nname = "{PLATFORM}"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n'


def out_queue(node_id: str) -> str:
    return f"exnode.{node_id}.out.{PLATFORM}"


class Key:
    """A provider's signing key as the provider holds it."""

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        self.algorithm = "Ed25519"
        self.pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.kid = ""

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def low_income_record(n: int) -> Record:
    return Record(f"DB-{n:06d}", n, Operation.UPSERT, {
        "姓名": f"张{n}", "公民身份号码": "360426199101010071", "性别": "1", "出生日期": "1991-01-01",
        "行政区划代码": "150102001000", "保障类别": "1", "户主公民身份号码": "360426199101010071",
        "与户主关系": "01", "家庭保障人口数": 3, "月保障金额": 1234.5, "纳入保障日期": "2025-06-01",
        "是否重点保障对象": False, "联系电话": "13812345678", "家庭住址": "呼和浩特市新城区某街道1号"})


def as_proto(batch: IncomingBatch) -> pb.RecordBatch:
    return pb.RecordBatch(
        batch_id=batch.batch_id, provider_code=batch.provider_code, resource_code=batch.resource_code,
        merkle_root=batch.merkle_root, key_id=batch.kid, signature=batch.signature,
        records=[pb.Record(id=r.id, sequence=r.sequence, operation=pb.UPSERT if r.operation is Operation.UPSERT
                           else pb.DELETE, payload=json.dumps(dict(r.payload), ensure_ascii=False).encode())
                 for r in batch.records])


def wait_until(predicate: Callable[[], object], timeout: float, what: Callable[[], str] | str,
               interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what() if callable(what) else what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ChannelAs = Callable[[str, tuple[str, ...]], grpc.Channel]
"""An authenticated channel to the node for a department and roles."""


def set_up_exchange(channel_as: ChannelAs, key: Key) -> str:
    """The provider's key registered, the consumer granted 低保 (demand filed and approved) and its
    platform subscribed; returns the platform's queue."""
    admin = exchange_pb2_grpc.ExchangeServiceStub(channel_as(PROVIDER, ("catalog_admin",)))
    key.kid = admin.RegisterKey(pb.RegisterKeyRequest(department_code=PROVIDER, algorithm="Ed25519",
                                                      public_pem=key.pem), timeout=30).key_id
    consumer = lists_pb2_grpc.ListsServiceStub(channel_as(CONSUMER, ("consumer",)))
    reviewer = lists_pb2_grpc.ListsServiceStub(channel_as(PROVIDER, ("reviewer",)))
    demand = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")), timeout=30)
    reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=demand.id, approve=True, clear_delivery=True), timeout=30)
    subscriber = exchange_pb2_grpc.ExchangeServiceStub(channel_as(CONSUMER, ("consumer",)))
    return subscriber.Subscribe(pb.SubscribeRequest(resource_code=LOW_INCOME, platform=PLATFORM), timeout=30).queue


class Ingestor:
    """A provider sending ``batches`` signed batches of ``size`` records over IngestStream.

    A batch counts as acknowledged only when the node answered it. When the stream breaks (the node was
    killed), the provider waits for the node and sends again from the first unanswered batch, under new
    batch ids: a batch the node had committed but not answered comes back as duplicates."""

    def __init__(self, connect: Callable[[], grpc.Channel], key: Key, *, batches: int, size: int,
                 first: int = 1, tag: str = "b", deadline_s: float = 600.0, pace_s: float = 0.0,
                 records_per_s: float = 0.0) -> None:
        self.connect = connect
        self.key = key
        self.batches = batches
        self.size = size
        self.first = first
        self.tag = tag
        self.deadline_s = deadline_s
        self.pace_s = pace_s
        """A pause before each batch: a provider that sends at a steady rate rather than as fast as it can."""
        self.records_per_s = records_per_s
        """A schedule instead: batch i leaves at start + i * size / records_per_s (a steady load)."""
        self._started = 0.0
        self.answered: dict[int, pb.IngestResponse] = {}
        """Batch index → the node's answer; filled in order."""
        self.interruptions: list[str] = []
        self.streams = 0
        self.failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._finish = threading.Event()

    def finish(self) -> None:
        """Send no further batch: the stream ends once the node answered what was sent (a soak's time is up)."""
        self._finish.set()

    def record_numbers(self, index: int) -> range:
        start = self.first + index * self.size
        return range(start, start + self.size)

    def acknowledged_ids(self) -> set[str]:
        return {low_income_record(n).id for index in list(self.answered) for n in self.record_numbers(index)}

    def all_ids(self) -> set[str]:
        return {low_income_record(n).id for index in range(self.batches) for n in self.record_numbers(index)}

    def start(self) -> Ingestor:
        self._thread = threading.Thread(target=self._run_catching, name=f"ingest-{self.tag}", daemon=True)
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self.failure is not None:
            raise AssertionError(f"the provider failed after {len(self.answered)} answered batches") \
                from self.failure
        assert not self._thread.is_alive(), (f"the provider is still sending after {timeout:.0f} s: "
                                             f"{len(self.answered)}/{self.batches} batches answered")

    def _run_catching(self) -> None:
        try:
            self.run()
        except BaseException as error:  # reported by join()
            self.failure = error

    def run(self) -> None:
        self._started = time.monotonic()
        deadline = time.monotonic() + self.deadline_s
        while len(self.answered) < self.batches and not self._finish.is_set():
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.answered)}/{self.batches} batches answered in {self.deadline_s} s; "
                                     f"interruptions: {self.interruptions[-5:]}")
            self.streams += 1
            start, stream = len(self.answered), self.streams
            sent: dict[str, int] = {}

            def requests(start: int = start, stream: int = stream, sent: dict[str, int] = sent
                         ) -> Iterator[pb.RecordBatch]:
                for index in range(start, self.batches):
                    if self._finish.is_set():
                        return
                    if self.pace_s:
                        time.sleep(self.pace_s)
                    if self.records_per_s:
                        due = self._started + index * self.size / self.records_per_s
                        time.sleep(max(0.0, due - time.monotonic()))
                    records = [low_income_record(n) for n in self.record_numbers(index)]
                    batch = provider_batch(PROVIDER, LOW_INCOME, records, self.key,
                                           batch_id=f"{self.tag}-{index:05d}-{stream}")
                    sent[batch.batch_id] = index
                    yield as_proto(batch)

            try:
                stub = exchange_pb2_grpc.ExchangeServiceStub(self.connect())
                for answer in stub.IngestStream(requests(), timeout=max(1.0, deadline - time.monotonic())):
                    index = sent[answer.batch_id]
                    assert index == len(self.answered), f"answer for batch {index} out of order"
                    assert answer.accepted + answer.duplicates == self.size, answer
                    self.answered[index] = answer
            except grpc.RpcError as error:
                if error.code() not in RETRIED:
                    raise
                self.interruptions.append(f"stream {stream} after {len(self.answered)} batches: "
                                          f"{error.code().name} {error.details()}")
                time.sleep(0.2)


@dataclass
class Drained:
    messages: int = 0
    redelivered: int = 0
    ids: Counter[str] = field(default_factory=Counter)
    batch_ids: Counter[str] = field(default_factory=Counter)
    redelivered_batches: set[str] = field(default_factory=set)
    redelivered_ids: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def distinct(self) -> set[str]:
        return set(self.ids)

    def duplicates(self) -> int:
        return sum(self.ids.values()) - len(self.ids)


def drain(queue: str, expected: set[str], *, trusted: dict | None = None, timeout: float = 120.0,
          idle_s: float = 2.0, stall_s: float = 30.0) -> Drained:
    """Consume ``queue`` (manual acks) until every expected record id arrived and nothing came for
    ``idle_s``, or ``timeout`` has passed and nothing came for ``stall_s``. Past ``timeout`` a relay that is
    still delivering is slow, not lossy (a loaded machine): it is waited for, up to three times ``timeout``.
    Every envelope is decoded; with ``trusted`` its node signature is checked."""
    out = Drained()
    started = time.monotonic()
    deadline, limit = started + timeout, started + 3 * timeout
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=500)
        idle_since = time.monotonic()
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.5):
            now = time.monotonic()
            if method is None:
                if now - idle_since >= idle_s and expected <= out.distinct:
                    break
                if (now > deadline and now - idle_since >= stall_s) or now > limit:
                    break
                continue
            idle_since = now
            envelope = regional.decode(body)
            if trusted is not None:
                out.problems.extend(envelopes.verify(envelope, trusted))
            out.messages += 1
            if method.redelivered:
                out.redelivered += 1
                out.redelivered_batches.add(envelope.batch_id)
                out.redelivered_ids.update(record.id for record in envelope.records)
            out.batch_ids[envelope.batch_id] += 1
            out.ids.update(record.id for record in envelope.records)
            headers = properties.headers or {}
            if headers.get("x-exnode-batch-id") != envelope.batch_id:
                out.problems.append(f"header x-exnode-batch-id of {envelope.batch_id} differs")
            if envelope.proof is not None and headers.get("x-exnode-record-id") != envelope.records[0].id:
                out.problems.append(f"header x-exnode-record-id of {envelope.records[0].id} differs")
            channel.basic_ack(method.delivery_tag)
            if now > limit:
                break
        channel.cancel()
    return out


def delete_node_topology(node_id: str) -> None:
    """The node's queues (platform, dead letters, inbound) and its dead-letter exchange."""
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        for queue in (out_queue(node_id), f"exnode.{node_id}.dlq", f"exnode.{node_id}.in"):
            channel.queue_delete(queue)
        channel.exchange_delete(f"exnode.{node_id}.dlx")


def outbox_states(engine: Engine) -> Counter[str]:
    """Outbox rows by state (PENDING, CONFIRMED, DEAD, RECEIPTED)."""
    with engine.connect() as connection:
        return Counter({state: count for state, count in connection.execute(
            select(outbox.c.state, func.count()).group_by(outbox.c.state))})


def rabbitmqctl(*args: str, timeout: float = 120.0) -> None:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"rabbitmqctl {' '.join(args)} exited {result.returncode}: {result.stderr}"


def broker_accepts() -> bool:
    try:
        with pika.BlockingConnection(pika.URLParameters(AMQP)):
            return True
    except pika.exceptions.AMQPError:
        return False


class Proxy:
    """A TCP forwarder to the broker whose connections the test can drop, all at once, mid-stream
    (``cut``); ``close`` also stops accepting, as a broker host that went away, and ``open`` listens on
    the same port again. ``stall`` is a partition as a network makes one: every connection stays open and
    new ones are still accepted, but no byte passes either way (each pump holds what it read, the rest
    waits in the kernel's buffers, as TCP keeps retransmitting), so only heartbeats can tell; ``flow``
    heals it and the held bytes go on, late, as TCP would deliver them."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.listener: socket.socket | None = None
        self.port = 0
        self.accepted = 0
        self.cuts = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self.open()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def open(self) -> None:
        if self.listener is not None:
            return
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.listener,), name="proxy-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if listener is not self.listener:  # accepted in the instant of close(): the link is down
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), name="proxy-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        self._flowing.wait()  # a close seen during a stall reaches the other side only once it heals
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        """The link stops passing bytes, both ways, without closing anything (a silent partition)."""
        self._flowing.clear()

    def flow(self) -> None:
        """The partition heals: held bytes (and closes) pass again."""
        self._flowing.set()

    def cut(self) -> int:
        """Drop every open connection, both ways; the proxy keeps accepting new ones."""
        with self._lock:
            open_, self._open = self._open, []
            self.cuts += 1
        for sock in open_:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(open_) // 2

    def close(self) -> None:
        """Stop accepting and drop every connection. The listener is shut down before it is closed: on
        Linux a bare close() does not wake the thread blocked in accept(), which could then still let a
        reconnecting client through a link the test believes is down."""
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut()
        self._flowing.set()  # pumps held by a stall end with their sockets


CONSUMER_SCRIPT = """
import json, sys, pika
url, queue, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3])
channel = pika.BlockingConnection(pika.URLParameters(url)).channel()
channel.basic_qos(prefetch_count=prefetch)
def received(channel, method, properties, body):  # never acked: the process is killed first
    print(json.dumps({"batch_id": properties.headers["x-exnode-batch-id"],
                      "record_id": properties.headers["x-exnode-record-id"], "redelivered": method.redelivered}),
          flush=True)
channel.basic_consume(queue, received, auto_ack=False)
print("consuming", flush=True)
channel.start_consuming()
"""


class ConsumerProcess:
    """A platform's consumer in its own process: manual acks, a prefetch, and it never gets to ack."""

    def __init__(self, queue: str, prefetch: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", CONSUMER_SCRIPT, AMQP, queue, str(prefetch)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.received: list[dict] = []
        self.lines: list[str] = []
        threading.Thread(target=self._read, name="consumer-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                self.received.append(json.loads(line))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def describe(self) -> str:
        error = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        return f"consumer output {self.lines[-3:]} {error[-2000:]}"


class ServedNode:
    """`exnode serve` as its own process on free ports, its output appended to ``log``."""

    def __init__(self, data: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.log = log
        self.env = env or {}
        """EXNODE_* settings of this process (replicas share a data directory and differ here)."""
        self.config: Config = load_config(data, environ=self.env)
        self.process: subprocess.Popen | None = None
        self.address = ""
        self.metrics_address = ""
        self.starts = 0
        self._channels: list[grpc.Channel] = []

    @property
    def node_id(self) -> str:
        return self.config.node.id

    def start(self, timeout: float = 90.0) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        self.starts += 1
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n===== start {self.starts} on {self.address} =====\n")
            log.flush()
            self.process = subprocess.Popen(
                [*EXNODE, "serve", "--data", str(self.data), "--listen", self.address,
                 "--metrics-listen", self.metrics_address],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"exnode serve exited {self.process.returncode}: {self.log_tail()}")
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"exnode serve did not serve within {timeout:.0f} s: {self.log_tail()}")
                time.sleep(0.2)

    def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: the node finishes running calls, stops its dispatcher and checkpoints its audit trail."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def token(self, dept: str, roles: tuple[str, ...]) -> str:
        return issue_dev_token(self.config.keys_dir, self.config.node.id, self.config.audience, subject="fault-test",
                               department_code=dept, roles=roles)

    def channel_as(self, dept: str, roles: tuple[str, ...]) -> grpc.Channel:
        """A channel to the node's current address (closed with the node)."""
        raw = grpc.insecure_channel(self.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self._channels.append(raw)
        return grpc.intercept_channel(raw, BearerInterceptor(self.token(dept, roles)))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def exnode(*args: str, timeout: float = 180.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXNODE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def init_served_node(tmp_path: Path, prefix: str, env: dict[str, str] | None = None,
                     data: Path | None = None) -> ServedNode:
    """`exnode init --sample --dev` of a node with an id of its own and the regional platform; not started."""
    data = data or tmp_path / "node"
    node_id = f"{prefix}{uuid.uuid4().hex[:10]}"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id, env=env)
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    return ServedNode(data, tmp_path / "serve.log", env)


def metric(node: ServedNode, name: str) -> float:
    """One gauge from the node's Prometheus endpoint (the test never locks the node's database)."""
    with urllib.request.urlopen(f"http://{node.metrics_address}/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"the node exports no {name}")


ALERTS = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "alerts.yml"


@dataclass(frozen=True)
class ThresholdAlert:
    """A shipped alert rule of the form ``<gauge> > <threshold>`` with a ``for`` duration: what a fault test
    evaluates against the node's own metrics, as Prometheus would on each scrape."""

    name: str
    metric: str
    threshold: float
    for_s: float

    def firing(self, samples: list[tuple[float, float]]) -> bool:
        """Whether the rule fires after ``samples`` ((time, value), oldest first): the condition held at
        every sample of the last ``for_s`` seconds and at one at least ``for_s`` before the last."""
        if not samples or samples[-1][1] <= self.threshold:
            return False
        held_since = samples[-1][0]
        for at, value in reversed(samples):
            if value <= self.threshold:
                break
            held_since = at
        return samples[-1][0] - held_since >= self.for_s


def threshold_alert(name: str) -> ThresholdAlert:
    """The rule ``name`` of ops/prometheus/alerts.yml; fails if it is not a plain threshold on one gauge
    (then this evaluation would no longer be the rule's)."""
    rules = [rule for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
             for rule in group["rules"] if rule.get("alert") == name]
    assert len(rules) == 1, f"{ALERTS} has {len(rules)} rules named {name}"
    found = re.fullmatch(r"\s*([a-z_:][a-z0-9_:]*)\s*>\s*([0-9.]+)\s*", rules[0]["expr"])
    assert found, f"{name}: {rules[0]['expr']!r} is not '<gauge> > <threshold>'"
    duration = re.fullmatch(r"(\d+)([smh])", str(rules[0].get("for", "0s")))
    assert duration, f"{name}: for {rules[0].get('for')!r}"
    return ThresholdAlert(name, found[1], float(found[2]),
                          int(duration[1]) * {"s": 1, "m": 60, "h": 3600}[duration[2]])
