"""``exnode bench relay``: end-to-end records per second through the exchange pipeline, against the raw
pika baseline measured in the same run; and ingest-to-consumer latency at a steady rate.

Why this shape: the pipeline's cost is what matters, so the baseline is what RabbitMQ alone does with the
same traffic: as many AMQP messages, of the same size (a one-record envelope with its inclusion proof, plus
its headers: the relay publishes one message per record), published with the dispatcher's window of
unconfirmed messages into the same kind of queue (durable quorum, persistent) and consumed with acks.
The node runs as ``exnode serve`` runs it: gRPC server and ingest in this process, the dispatcher in a
process of its own (node/pipeline/dispatcher_process.py); ``peak_rss_mb`` and ``relay_node_cpu_s`` count both. The
provider, the subscriber and the raw publisher are separate processes (spawn, each with its own GIL).

Relay path timed: IngestStream (one stream, pipelined: the provider does not wait for an answer before
sending the next batch; one stream because a provider's sequence numbers must rise, so concurrent
streams would refuse each other's batches) → one transaction (records, batch, audit, outbox) → the
dispatcher publishes one message per record with windowed confirms → a subscriber acks every message,
counts distinct record ids and decodes and verifies every 100th. Time runs from the provider's first send
to the last record consumed (CLOCK_MONOTONIC is shared by the processes of one machine).

Runs: relay and raw baseline alternate, three of each (relay, raw, relay, raw, relay, raw), and the
medians are compared: on a shared machine the speed drifts, and alternating puts both medians in the same
stretch of time. Each pair's own ratio is printed as a range.

Encryption: records are encrypted at rest in every run (no node runs without it). The messages to the
subscriber are sealed to its registered key (HPKE X25519 / AES-256-GCM) in the ``relay_*`` runs — the
figures with encryption on — and sent in clear (its key revoked, its grant allowing clear delivery) in the
``relay_clear_*`` runs interleaved with them: ``relay_sealed_vs_clear_ratio`` is the cost of sealing. The
sealed runs' subscriber opens every message, as a consumer must.

Latency: ``rate`` records/s as batches of ``rate // 20`` every 50 ms on one stream. Each record id carries
its send time (``L<sequence>-<monotonic ns>``): the payload's 家庭住址 is masked by the grant, the id is not.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import resource
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

PROVIDER = "11100000MB01284764"  # 民政部社会救助司
CONSUMER = "11150100011627354Q"  # 呼和浩特市民政局
LOW_INCOME = "311140001/000001"  # 城乡最低生活保障对象信息 (有条件共享)
PLATFORM = "bench"
PREFETCH = 1000
VERIFY_EVERY = 100
"""The relay's subscriber decodes and verifies every 100th message (all in the fault and integration tests)."""
RUNS = 3
"""Relay and raw baseline runs, interleaved; the medians are printed (and the ratio of each pair's range)."""
TARGET_PAYLOAD_BYTES = 1024
_ADDRESS_HEAD = "内蒙古自治区呼和浩特市新城区海拉尔东街道"
_ADDRESS_FILL = "幸福小区一号楼二单元三层东户旁边的院子里"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _log(message: str) -> None:
    print(f"[bench relay] {message}", file=sys.stderr, flush=True)


def address(chars: int) -> str:
    """A 家庭住址 of exactly ``chars`` characters (the item allows 200)."""
    text = _ADDRESS_HEAD
    while len(text) < chars:
        text += _ADDRESS_FILL
    return text[:chars]


def low_income_payload(n: int, address_chars: int) -> dict[str, Any]:
    return {"姓名": f"张{n}", "公民身份号码": "360426199101010071", "性别": "1", "出生日期": "1991-01-01",
            "行政区划代码": "150102001000", "保障类别": "1", "户主公民身份号码": "360426199101010071",
            "与户主关系": "01", "家庭保障人口数": 3, "月保障金额": 1234.5, "纳入保障日期": "2025-06-01",
            "是否重点保障对象": False, "联系电话": "13812345678", "家庭住址": address(address_chars)}


def payload_bytes(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False).encode())


def address_chars_for(target: int = TARGET_PAYLOAD_BYTES) -> int:
    """The 家庭住址 length that brings the payload closest to ``target`` bytes (at most 200 characters)."""
    base = payload_bytes(low_income_payload(99_999, 0))
    return max(0, min(200, round((target - base) / 3)))


class Signer:
    """The provider's Ed25519 key, rebuilt in the provider process from its raw private bytes."""

    def __init__(self, private: bytes, kid: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(private)
        self.kid = kid

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def _batch_proto(signer: Signer, records: list[Any]) -> Any:
    from exnode.v1 import exchange_pb2 as pb

    from node.pipeline import provider_batch

    batch = provider_batch(PROVIDER, LOW_INCOME, records, signer)
    return pb.RecordBatch(
        batch_id=batch.batch_id, provider_code=batch.provider_code, resource_code=batch.resource_code,
        merkle_root=batch.merkle_root, key_id=batch.kid, signature=batch.signature,
        records=[pb.Record(id=r.id, sequence=r.sequence, operation=pb.UPSERT,
                           payload=json.dumps(dict(r.payload), ensure_ascii=False).encode()) for r in batch.records])


# -- child processes ------------------------------------------------------------------------------------
def _provider(address_: str, token: str, private: bytes, kid: str, plan: dict[str, Any], ready: Any, go: Any,
              results: Any) -> None:
    """Sends the records over one IngestStream: all at once (throughput) or at a steady rate (latency)."""
    import grpc
    from exnode.v1 import exchange_pb2_grpc

    from catalog.records import Operation, Record

    signer = Signer(private, kid)
    metadata = (("authorization", f"Bearer {token}"),)
    chars = plan["address_chars"]
    first = plan["first_sequence"]
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    if plan["mode"] == "throughput":
        records, size = plan["records"], plan["batch"]
        messages = []
        for start in range(0, records, size):
            chunk = [Record(f"B{first + n:09d}", first + n, Operation.UPSERT, low_income_payload(first + n, chars))
                     for n in range(start, min(records, start + size))]
            messages.append(_batch_proto(signer, chunk))
        ready.set()
        go.wait()
        cpu = _cpu_s()
        accepted = 0
        with grpc.insecure_channel(address_, options=options) as channel:
            stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
            grpc.channel_ready_future(channel).result(30)
            started = time.monotonic_ns()
            for answer in stub.IngestStream(iter(messages), metadata=metadata):
                accepted += answer.accepted
            answered = time.monotonic_ns()
        results.put({"started_ns": started, "answered_ns": answered, "accepted": accepted, "cpu_s": _cpu_s() - cpu})
        return

    size, batches, interval = plan["batch"], plan["batches"], plan["interval"]

    async def run() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(address_, options=options) as channel:
            stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
            await channel.channel_ready()
            late = 0

            async def requests() -> Any:
                nonlocal late
                begin = time.monotonic()
                for k in range(batches):
                    delay = begin + k * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        late += 1
                    sent = time.monotonic_ns()
                    base = first + k * size
                    yield _batch_proto(signer, [
                        Record(f"L{base + n:09d}-{sent}", base + n, Operation.UPSERT,
                               low_income_payload(base + n, chars)) for n in range(size)])

            accepted = 0
            async for answer in stub.IngestStream(requests(), metadata=metadata):
                accepted += answer.accepted
        return {"accepted": accepted, "late_sends": late}

    ready.set()
    go.wait()
    results.put(asyncio.run(run()))


def _consumer(url: str, queue: str, mode: str, expected: int, timeout: float, keys: tuple[str, str] | None,
              ready: Any, results: Any, sealing: tuple[str, bytes] | None = None) -> None:
    """A subscriber: manual acks, prefetch ``PREFETCH``. ``relay``: counts distinct record ids (the
    ``x-exnode-record-id`` header every relayed message carries) and decodes and verifies one message in
    ``VERIFY_EVERY`` against the node's published keys (``latency``: also the send time in each id);
    ``raw``: counts messages only. What a platform does with a record after it has it is the platform's
    work, not the relay's; the sampled verification shows the messages are the signed records."""
    import pika

    from adapters.codecs import envelope as envelopes
    from adapters.codecs import regional
    from adapters.consumer import open_message
    from security.keys import read_public_keys
    from security.sealing import ConsumerPrivateKey

    opener = ConsumerPrivateKey(*sealing) if sealing else None
    trusted = {keys[0]: read_public_keys(Path(keys[1]))} if keys else {}
    params = pika.URLParameters(url)
    params.heartbeat = 60
    seen: set[str] = set()
    latencies: list[int] = []
    problems: list[str] = []
    state: dict[str, Any] = {"messages": 0, "body_bytes": 0, "header_bytes": 0, "header_samples": 0, "first_ns": 0,
                             "last_ns": 0, "count": 0, "verified": 0}
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        deadline = time.monotonic() + timeout
        cpu = _cpu_s()
        ready.set()
        for method, properties, body in channel.consume(queue, auto_ack=False, inactivity_timeout=1.0):
            if method is None:
                if time.monotonic() > deadline:
                    break
                continue
            now = time.monotonic_ns()
            state["first_ns"] = state["first_ns"] or now
            state["messages"] += 1
            headers = properties.headers or {}
            state["body_bytes"] += len(body)
            if state["messages"] % VERIFY_EVERY == 1:  # sampled: the subscriber's own bookkeeping stays light
                state["header_bytes"] += sum(len(str(k)) + len(str(v)) for k, v in headers.items())
                state["header_samples"] += 1
            if mode == "raw":
                state["count"] += 1
            else:
                record_id = headers.get("x-exnode-record-id", "")
                if opener is not None:  # a consumer opens every message it is sent
                    _, body, sealed = open_message(opener, properties.content_type, headers, body)
                    if not sealed:
                        problems.append(f"record {record_id}: came in clear to a consumer with a key")
                if state["messages"] % VERIFY_EVERY == 1:
                    envelope = regional.decode(body)
                    problems.extend(envelopes.verify(envelope, trusted))
                    if [r.id for r in envelope.records] != [record_id]:
                        problems.append(f"header x-exnode-record-id {record_id!r} is not the record's id")
                    state["verified"] += 1
                if record_id not in seen and (mode != "latency" or record_id.startswith("L")):
                    seen.add(record_id)
                    if mode == "latency":
                        latencies.append(now - int(record_id.rsplit("-", 1)[1]))
                state["count"] = len(seen)
            channel.basic_ack(method.delivery_tag)
            if state["count"] >= expected:
                state["last_ns"] = time.monotonic_ns()
                break
        channel.cancel()
    state["cpu_s"] = _cpu_s() - cpu
    state["problems"] = problems[:10]
    latencies.sort()
    if latencies:
        state["p50_ms"] = latencies[len(latencies) // 2] / 1e6
        state["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6
        state["max_ms"] = latencies[-1] / 1e6
    results.put(state)


def _raw_publisher(url: str, queue: str, count: int, body_size: int, header_size: int, window: int, go: Any,
                   results: Any) -> None:
    """``count`` persistent messages, at most ``window`` unconfirmed (SelectConnection, delivery tags)."""
    import pika
    from pika.adapters.select_connection import SelectConnection
    from pika.spec import Basic

    body = b"x" * body_size
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json",
                                      headers={"x-bench-pad": "h" * max(1, header_size)}, app_id="exnode:bench")
    state = {"sent": 0, "confirmed": 0, "nacked": 0, "started_ns": 0, "confirmed_ns": 0}
    unconfirmed: set[int] = set()

    def publish(channel: Any) -> None:
        while state["sent"] < count and len(unconfirmed) < window:
            if not state["started_ns"]:
                state["started_ns"] = time.monotonic_ns()
            channel.basic_publish("", queue, body, properties)
            state["sent"] += 1
            unconfirmed.add(state["sent"])

    def on_confirm(frame: Any) -> None:
        method = frame.method
        tags = [t for t in unconfirmed if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            unconfirmed.discard(tag)
            state["confirmed" if isinstance(method, Basic.Ack) else "nacked"] += 1
        if state["confirmed"] + state["nacked"] >= count:
            state["confirmed_ns"] = time.monotonic_ns()
            connection.close()
        else:
            publish(channel_box[0])

    channel_box: list[Any] = []

    def on_channel(channel: Any) -> None:
        channel_box.append(channel)
        channel.confirm_delivery(on_confirm)
        go.wait()
        publish(channel)

    connection = SelectConnection(pika.URLParameters(url), on_open_callback=lambda c: c.channel(
        on_open_callback=on_channel), on_close_callback=lambda c, _r: c.ioloop.stop())
    connection.ioloop.start()
    results.put(state)


# -- the run --------------------------------------------------------------------------------------------
class _Node:
    """A node serving gRPC on a background event loop in this process, with its dispatcher."""

    def __init__(self, tmp: Path, database_url: str, dispatch_process: bool = True) -> None:
        from node import bootstrap
        from node.bootstrap import load_sample
        from node.config import load_config
        from node.grpc.server import build_server
        from node.ops.startup import tune_gc
        from node.storage.database import migrate
        from security.identity import create_dev_issuer_key
        from security.keys import KeyStore

        data = tmp / "node"
        data.mkdir()
        KeyStore.create(data / "keys")
        create_dev_issuer_key(data / "keys")
        (data / "platforms.toml").write_text(
            f'[[platform]]\nname = "{PLATFORM}"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n', encoding="utf-8")
        config = load_config(data, environ={})
        self.node_id = f"bench{uuid.uuid4().hex[:10]}"
        config = replace(config, node=replace(config.node, id=self.node_id),
                         auth=replace(config.auth, trust_dev_issuer=True),
                         database=replace(config.database, url=database_url or f"sqlite:///{data / 'exnode.db'}"))
        migrate(config.database_url)
        self.config = config
        self.node = bootstrap.build(config, apply_migrations=False)
        load_sample(self.node)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server, port, _ = asyncio.run_coroutine_threadsafe(
            build_server(self.node, "127.0.0.1:0"), self.loop).result(30)
        self.address = f"127.0.0.1:{port}"
        self.node.start_dispatcher(process=dispatch_process)
        tune_gc(self.node.config.server)  # as ``exnode serve`` does once it serves

    def token(self, department: str, roles: list[str]) -> str:
        from security.identity import issue_dev_token

        return issue_dev_token(self.config.keys_dir, self.config.node.id, self.config.audience, subject="bench",
                               department_code=department, roles=roles)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.node.close()


def _set_up(node: _Node) -> tuple[bytes, str, str]:
    """Grant (FileDemand + DecideDemand), the provider's key (RegisterKey) and the subscription (Subscribe),
    over gRPC as in tests/integration/test_exchange_relay.py. Returns the key's raw bytes, its id, the queue."""
    import grpc
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from exnode.v1 import exchange_pb2 as pb
    from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc

    def auth(department: str, role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {node.token(department, [role])}"),)

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    with grpc.insecure_channel(node.address) as channel:
        lists = lists_pb2_grpc.ListsServiceStub(channel)
        exchange = exchange_pb2_grpc.ExchangeServiceStub(channel)
        demand = lists.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
            resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")),
            metadata=auth(CONSUMER, "consumer"))
        lists.DecideDemand(lists_pb2.DecideDemandRequest(id=demand.id, approve=True, clear_delivery=True),
                           metadata=auth(PROVIDER, "reviewer"))
        kid = exchange.RegisterKey(pb.RegisterKeyRequest(department_code=PROVIDER, algorithm="Ed25519",
                                                         public_pem=pem), metadata=auth(PROVIDER, "catalog_admin")).key_id
        queue = exchange.Subscribe(pb.SubscribeRequest(resource_code=LOW_INCOME, platform=PLATFORM),
                                   metadata=auth(CONSUMER, "consumer")).queue
    return private, kid, queue


def _delete_queues(url: str, node_id: str, queues: list[str]) -> None:
    import pika

    from adapters.rabbit import names

    try:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            for queue in [*queues, names(node_id)["dlq"]]:
                channel.queue_delete(queue)
            channel.exchange_delete(names(node_id)["dlx"])
    except Exception as error:  # the figures are printed already; say what was left behind
        _log(f"could not delete the bench queues of node {node_id}: {error}")


def _result(results: Any, process: Any, timeout: float, what: str) -> dict[str, Any]:
    """The child's report; a clear error as soon as the child died without one (e.g. the broker went away)."""
    import queue

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if not process.is_alive():
                try:
                    return results.get(timeout=1.0)
                except queue.Empty:
                    raise RuntimeError(f"the bench's {what} process exited (code {process.exitcode}) without its "
                                       "figures: see its traceback above (a broker restart?)") from None
    raise RuntimeError(f"the bench's {what} process gave no figures in {timeout:.0f} s")


def _phase(context: Any, provider_args: tuple, consumer_args: tuple, timeout: float,
           sealing: tuple[str, bytes] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start the consumer, then the provider (which builds its batches first), then say go."""
    ready_c, ready_p, go = context.Event(), context.Event(), context.Event()
    out_c, out_p = context.Queue(), context.Queue()
    consumer = context.Process(target=_consumer, args=(*consumer_args, ready_c, out_c, sealing), daemon=True)
    provider = context.Process(target=_provider, args=(*provider_args, ready_p, go, out_p), daemon=True)
    consumer.start()
    provider.start()
    if not ready_c.wait(60) or not ready_p.wait(timeout):
        raise RuntimeError("the bench's consumer or provider process did not get ready")
    go.set()
    sent = _result(out_p, provider, timeout, "provider")
    consumed = _result(out_c, consumer, timeout, "consumer")
    provider.join(30)
    consumer.join(30)
    return sent, consumed


def _raw_baseline(context: Any, url: str, queue: str, node_id: str, messages: int, body: int, header: int,
                  window: int, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    import pika

    from adapters.rabbit import queue_arguments

    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        connection.channel().queue_declare(queue, durable=True, arguments=queue_arguments(node_id))
    ready, go = context.Event(), context.Event()
    out_c, out_p = context.Queue(), context.Queue()
    consumer = context.Process(target=_consumer, args=(url, queue, "raw", messages, timeout, None, ready, out_c), daemon=True)
    publisher = context.Process(target=_raw_publisher, args=(url, queue, messages, body, header, window, go, out_p),
                                daemon=True)
    consumer.start()
    publisher.start()
    if not ready.wait(60):
        raise RuntimeError("the raw baseline's consumer did not get ready")
    go.set()
    published = _result(out_p, publisher, timeout, "raw publisher")
    consumed = _result(out_c, consumer, timeout, "raw consumer")
    publisher.join(30)
    consumer.join(30)
    if published["nacked"] or consumed["count"] < messages:
        raise RuntimeError(f"raw baseline: {published['nacked']} nacked, {consumed['count']} of {messages} consumed")
    return published, consumed


def _seal_to_subscriber(node: _Node, on: bool) -> tuple[str, bytes] | None:
    """Register a fresh encryption key for the subscriber (``on``), or revoke its keys: the next batches'
    messages are sealed to it, or go in clear (its grant allows clear delivery)."""
    import grpc
    from exnode.v1 import exchange_pb2 as pb
    from exnode.v1 import exchange_pb2_grpc

    from security.sealing import ConsumerPrivateKey

    if not on:
        with node.node.uow(write=True) as uow:
            uow.exchange.revoke_consumer_keys(CONSUMER, node.node.catalog.clock())
            uow.commit()
        return None
    key = ConsumerPrivateKey.generate()
    with grpc.insecure_channel(node.address) as channel:
        exchange_pb2_grpc.ExchangeServiceStub(channel).RegisterEncryptionKey(
            pb.RegisterEncryptionKeyRequest(department_code=CONSUMER, algorithm=key.algorithm,
                                            public_pem=key.public_pem),
            metadata=(("authorization", f"Bearer {node.token(CONSUMER, ['consumer'])}"),))
    return key.algorithm, key.private_pem


def _relay_run(context: Any, node: _Node, token: str, private: bytes, kid: str, queue: str, url: str,
               keys: tuple[str, str], records: int, batch: int, first_sequence: int, chars: int, timeout: float,
               sealing: tuple[str, bytes] | None = None) -> dict[str, Any]:
    """One throughput run: ``records`` records over one pipelined IngestStream, timed from the provider's
    first send to the subscriber's last record. CPU counts both node processes (node and dispatcher)."""
    from node.pipeline.dispatcher_process import DispatcherProcess

    dispatcher = node.node.dispatcher
    assert dispatcher is not None
    dispatcher_cpu = dispatcher.cpu_seconds if isinstance(dispatcher, DispatcherProcess) else (lambda: 0.0)
    published, cpu = dispatcher.stats.published, _cpu_s() + dispatcher_cpu()
    plan = {"mode": "throughput", "records": records, "batch": batch, "first_sequence": first_sequence,
            "address_chars": chars}
    sent, consumed = _phase(context, (node.address, token, private, kid, plan),
                            (url, queue, "relay", records, timeout, keys), timeout, sealing)
    if consumed["count"] < records or not consumed["last_ns"]:
        raise RuntimeError(f"the subscriber received {consumed['count']} of {records} records")
    if consumed["problems"] or not consumed["verified"]:
        raise RuntimeError(f"relayed messages did not verify: {consumed['problems']}")
    seconds = (consumed["last_ns"] - sent["started_ns"]) / 1e9
    messages = consumed["messages"]
    return {
        "relay_records_per_s": records / seconds,
        "relay_seconds": seconds,
        "relay_ingest_records_per_s": sent["accepted"] / ((sent["answered_ns"] - sent["started_ns"]) / 1e9),
        "relay_messages": messages,
        "relay_messages_published": dispatcher.stats.published - published,
        "relay_message_bytes_avg": consumed["body_bytes"] / messages,
        "relay_header_bytes_avg": consumed["header_bytes"] / max(1, consumed["header_samples"]),
        "relay_node_cpu_s": _cpu_s() + dispatcher_cpu() - cpu, "relay_provider_cpu_s": sent["cpu_s"],
        "relay_consumer_cpu_s": consumed["cpu_s"], "relay_messages_verified": consumed["verified"],
    }


ORDER = ("records", "batch", "payload_bytes", "relay_runs", "relay_records_per_s", "relay_records_per_s_min",
         "relay_records_per_s_max", "relay_seconds", "relay_ingest_records_per_s",
         "relay_messages", "relay_messages_published", "relay_message_bytes_avg", "relay_header_bytes_avg",
         "relay_node_cpu_s", "relay_provider_cpu_s", "relay_consumer_cpu_s", "relay_messages_verified",
         "raw_runs", "raw_messages_per_s", "raw_messages_per_s_min", "raw_messages_per_s_max", "raw_records_per_s",
         "relay_vs_raw_ratio", "relay_vs_raw_ratio_pairs_min", "relay_vs_raw_ratio_pairs_max",
         "relay_clear_records_per_s", "relay_clear_records_per_s_min", "relay_clear_records_per_s_max",
         "relay_clear_node_cpu_s", "relay_clear_message_bytes_avg", "relay_clear_vs_raw_ratio",
         "relay_sealed_vs_clear_ratio", "latency_rate_per_s",
         "latency_batch_size", "latency_records", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
         "latency_late_sends", "peak_rss_mb", "peak_rss_node_process_mb", "peak_rss_dispatcher_process_mb")
"""The figures, in the order printed."""


def main(records: int = 100_000, batch: int = 500, rate: int = 1000, latency_seconds: float = 20,
         database_url: str = "", dispatch_process: bool = True) -> int:
    """Print name=value figures on stdout (progress on stderr)."""
    chars = address_chars_for()
    sample = payload_bytes(low_income_payload(records // 2, chars))
    latency_batch = max(1, rate // 20)
    interval = latency_batch / rate
    latency_batches = max(1, round(latency_seconds * rate / latency_batch))
    _log(f"records={records} batch={batch} payload≈{sample} B (家庭住址 {chars} chars); latency: {rate}/s as "
         f"{latency_batch} every {interval * 1000:.0f} ms for {latency_seconds} s; "
         f"database={'sqlite' if not database_url else database_url.split('://')[0]}")
    from node.pipeline.dispatcher_process import DispatcherProcess

    context = multiprocessing.get_context("spawn")
    timeout = 300 + records / 100
    figures: dict[str, Any] = {"records": records, "batch": batch, "payload_bytes": sample}
    with tempfile.TemporaryDirectory(prefix="exnode-bench-relay-") as tmp:
        node = _Node(Path(tmp), database_url, dispatch_process)
        url = node.config.rabbitmq.url
        queues = [f"exnode.{node.node_id}.bench-raw"]
        try:
            private, kid, queue = _set_up(node)
            queues.append(queue)
            from security.keys import write_public_keys

            keys = (node.node_id, str(write_public_keys(node.node.keys, node.node_id)))
            token = node.token(PROVIDER, ["provider"])
            dispatcher = node.node.dispatcher
            assert dispatcher is not None

            # 1. throughput, interleaved with the raw baseline: relay, raw, relay, raw … so that both medians
            # come from the same stretch of time on a shared machine.
            relay_runs: list[dict[str, Any]] = []
            clear_runs: list[dict[str, Any]] = []
            raw_rates: list[float] = []
            for run in range(RUNS):
                _seal_to_subscriber(node, False)
                _log(f"relay run {run + 1}/{RUNS}, messages in clear: {records} records in batches of {batch}")
                clear_runs.append(_relay_run(context, node, token, private, kid, queue, url, keys, records, batch,
                                             2 * run * records + 1, chars, timeout))
                sealing = _seal_to_subscriber(node, True)
                _log(f"relay run {run + 1}/{RUNS}, messages sealed to the subscriber: {records} records → {queue}")
                relay_runs.append(_relay_run(context, node, token, private, kid, queue, url, keys, records, batch,
                                             (2 * run + 1) * records + 1, chars, timeout, sealing))
                first = relay_runs[0]
                body, header = round(first["relay_message_bytes_avg"]), round(first["relay_header_bytes_avg"])
                messages = first["relay_messages"]
                _log(f"raw run {run + 1}/{RUNS}: {messages} messages of {body} B (+{header} B headers), "
                     f"window {dispatcher.window} → {queues[0]}")
                published_raw, consumed_raw = _raw_baseline(context, url, queues[0], node.node_id, messages, body,
                                                            header, dispatcher.window, timeout)
                raw_rates.append(messages / ((consumed_raw["last_ns"] - published_raw["started_ns"]) / 1e9))
                _log(f"relay {relay_runs[-1]['relay_records_per_s']:.0f} records/s, raw {raw_rates[-1]:.0f} "
                     "messages/s")

            # 2. latency: a steady `rate` on one stream; record ids carry their send time.
            _log(f"latency: {latency_batches} batches of {latency_batch} every {interval * 1000:.0f} ms")
            plan = {"mode": "latency", "batch": latency_batch, "batches": latency_batches, "interval": interval,
                    "first_sequence": 2 * RUNS * records + 1, "address_chars": chars}
            expected = latency_batches * latency_batch
            sent, consumed = _phase(context, (node.address, token, private, kid, plan),
                                    (url, queue, "latency", expected, latency_seconds + timeout, keys),
                                    latency_seconds + timeout, sealing)
            if consumed["count"] < expected:
                raise RuntimeError(f"the subscriber received {consumed['count']} of {expected} records")
            figures.update({
                "latency_rate_per_s": rate, "latency_batch_size": latency_batch, "latency_records": expected,
                "latency_p50_ms": consumed["p50_ms"], "latency_p99_ms": consumed["p99_ms"],
                "latency_max_ms": consumed["max_ms"], "latency_late_sends": sent["late_sends"],
            })
            node_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            dispatcher_rss = dispatcher.peak_rss_mb() if isinstance(dispatcher, DispatcherProcess) else 0.0
            figures.update({"peak_rss_mb": node_rss + dispatcher_rss, "peak_rss_node_process_mb": node_rss,
                            "peak_rss_dispatcher_process_mb": dispatcher_rss})
        finally:
            node.close()
            _delete_queues(url, node.node_id, queues)
    median_run = sorted(relay_runs, key=lambda r: r["relay_records_per_s"])[len(relay_runs) // 2]
    figures.update(median_run)
    messages = median_run["relay_messages"]
    raw_messages_per_s = sorted(raw_rates)[len(raw_rates) // 2]
    raw_records_per_s = raw_messages_per_s * records / messages
    pairs = [r["relay_records_per_s"] / (raw * records / r["relay_messages"]) for r, raw in zip(relay_runs, raw_rates,
                                                                                               strict=True)]
    figures.update({
        "relay_runs": RUNS,
        "relay_records_per_s_min": min(r["relay_records_per_s"] for r in relay_runs),
        "relay_records_per_s_max": max(r["relay_records_per_s"] for r in relay_runs),
        "raw_messages_per_s": raw_messages_per_s,
        "raw_messages_per_s_min": min(raw_rates),
        "raw_messages_per_s_max": max(raw_rates),
        "raw_runs": RUNS,
        "raw_records_per_s": raw_records_per_s,
        "relay_vs_raw_ratio": figures["relay_records_per_s"] / raw_records_per_s,
        "relay_vs_raw_ratio_pairs_min": min(pairs),
        "relay_vs_raw_ratio_pairs_max": max(pairs),
    })
    median_clear = sorted(clear_runs, key=lambda r: r["relay_records_per_s"])[len(clear_runs) // 2]
    figures.update({
        "relay_clear_records_per_s": median_clear["relay_records_per_s"],
        "relay_clear_records_per_s_min": min(r["relay_records_per_s"] for r in clear_runs),
        "relay_clear_records_per_s_max": max(r["relay_records_per_s"] for r in clear_runs),
        "relay_clear_node_cpu_s": median_clear["relay_node_cpu_s"],
        "relay_clear_message_bytes_avg": median_clear["relay_message_bytes_avg"],
        "relay_clear_vs_raw_ratio": median_clear["relay_records_per_s"] / raw_records_per_s,
        "relay_sealed_vs_clear_ratio": figures["relay_records_per_s"] / median_clear["relay_records_per_s"],
    })
    for name in ORDER:
        value = figures[name]
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}")
    return 0
