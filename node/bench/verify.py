"""``exnode bench verify``: VerifyClaim and QueryRecords against N keyed records, beside a raw ``grpc.aio``
unary echo server measured in the same run (the ratio says what the node's work costs over gRPC itself).

Shape: the setup (in a process of its own, so its memory is not the server's) stores N 低保 records and
their current-record index in bulk through the storage layer (not the ingest path: that has its own
bench); the node's gRPC server then runs in this process with the real authentication, audit trail,
policy and quota; 32 concurrent callers in another process (its own GIL) call for ``duration`` seconds
with random existing keys. The echo server runs in this process too, with the same callers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from catalog.codes import resident_id_check_character

PROVIDER = "11100000MB01284764"
CONSUMER = "11150100011627354Q"
LOW_INCOME = "311140001/000001"
CHUNK = 20_000


def id_number(n: int) -> str:
    """The n-th valid 公民身份号码 of the bench (region 150102, born 1950-01-01 plus n % 20000 days)."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=n % 20_000)
    body = f"150102{born:%Y%m%d}{n // 20_000 % 1000:03d}"
    return body + resident_id_check_character(body)


def _payload(n: int, number: str) -> dict[str, Any]:
    return {"姓名": f"王{n}", "公民身份号码": number, "行政区划代码": "150102001000", "保障类别": "1",
            "户主公民身份号码": number, "家庭保障人口数": 3, "月保障金额": 800 + n % 900, "纳入保障日期": "2025-06-01"}


def _log(text: str) -> None:
    print(f"bench verify: {text}", file=sys.stderr, flush=True)


def _setup(data: str, url: str, count: int, done: Any) -> None:
    """A child process: the data directory, the sample catalog, ``count`` keyed records with their index,
    and the consumer's copy and verification grants."""
    from sqlalchemy import insert

    from catalog.claims import key_text
    from catalog.lists import DemandRequest, GrantKind
    from node import bootstrap
    from node.bootstrap import load_sample
    from node.config import load_config
    from node.storage.pull_repository import PullRepository
    from node.storage.tables import record_keys
    from security.identity import Principal, create_dev_issuer_key
    from security.keys import KeyStore

    directory = Path(data)
    KeyStore.create(directory / "keys")
    create_dev_issuer_key(directory / "keys")
    (directory / "exnode.toml").write_text(
        f'[node]\nid = "bench"\ndepartment_code = "{PROVIDER}"\n[database]\nurl = "{url}"\n'
        '[auth]\ntrust_dev_issuer = true\n[exchange]\ndispatch = false\nplatforms_file = ""\n', encoding="utf-8")
    node = bootstrap.build(load_config(directory, environ={}))
    try:
        load_sample(node)
        _, version = node.catalog.get(Principal.system("bench"), LOW_INCOME)
        key_items = version.metadata.key_items
        hasher = node.ingest.key_hasher
        assert hasher is not None
        at = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        for start in range(1, count + 1, CHUNK):
            rows, keys = [], []
            for n in range(start, min(start + CHUNK, count + 1)):
                number = id_number(n)
                payload = json.dumps(_payload(n, number), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                rows.append({"provider_code": PROVIDER, "resource_code": LOW_INCOME, "record_id": f"DB-{n:08d}",
                             "sequence": n, "operation": "UPSERT", "payload": payload,
                             "content_hash": hashlib.sha256(payload.encode()).hexdigest(),
                             "batch_id": f"bench-{n // 5000}", "received_at": at, "position": n})
                keys.append({"resource_code": LOW_INCOME, "provider_code": PROVIDER, "record_id": f"DB-{n:08d}",
                             "key_hash": hasher(key_text(key_items, {"公民身份号码": number})), "sequence": n,
                             "updated_at": at})
            with node.engine.begin() as connection:
                PullRepository(connection).add_positioned(rows)
                connection.execute(insert(record_keys), keys)
        if node.engine.dialect.name == "postgresql":
            # what autovacuum does a minute after a bulk load: without statistics the planner joined the index
            # to ``records`` through ix_records_sequence and filtered thousands of rows per key (5 ms a lookup
            # at 20,000 records, growing with the table), so the bench measured a plan no running node keeps
            with node.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE records")
                connection.exec_driver_sql("ANALYZE record_keys")
        _log(f"stored {count} keyed records in {time.perf_counter() - started:.1f} s")
        consumer = Principal("bench", CONSUMER, frozenset({"consumer"}))
        reviewer = Principal("bench-reviewer", PROVIDER, frozenset({"reviewer"}))
        for kind, items, quota in ((GrantKind.COPY, ("姓名", "公民身份号码", "月保障金额"), 0),
                                   (GrantKind.VERIFY, ("姓名", "月保障金额"), 1_000_000)):
            demand = node.lists.file_demand(consumer, DemandRequest(
                CONSUMER, LOW_INCOME, items=items, purpose="bench", legal_basis="bench", contact="bench", kind=kind,
                daily_quota=quota))
            node.lists.decide(reviewer, demand.id, True)
    finally:
        node.close()
    done.put(True)


def _callers(address: str, token: str, count: int, duration: float, concurrency: int, mode: str,
             results: Any) -> None:
    """The load (a child process): ``concurrency`` callers for ``duration`` seconds."""
    import grpc
    from exnode.v1 import query_pb2 as pb
    from exnode.v1 import query_pb2_grpc

    rng = random.Random(7)

    async def run() -> list[float]:
        metadata = (("authorization", f"Bearer {token}"),)
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(address) as channel:
            if mode == "echo":
                echo = channel.unary_unary("/bench.Echo/Echo")
                request = b"x" * 200

                async def call() -> None:
                    await echo(request, metadata=metadata)
            else:
                stub = query_pb2_grpc.QueryServiceStub(channel)

                async def call() -> None:
                    if mode == "verify":
                        n = rng.randint(1, count)
                        await stub.VerifyClaim(pb.VerifyClaimRequest(
                            resource_code=LOW_INCOME, key=pb.RecordKey(values={"公民身份号码": id_number(n)}),
                            claims=[pb.AssertedItem(item="姓名", value=f"王{n}"),
                                    pb.AssertedItem(item="月保障金额", value="≤ 1200")]), metadata=metadata)
                    else:
                        keys = [pb.RecordKey(values={"公民身份号码": id_number(rng.randint(1, count))})
                                for _ in range(10)]
                        await stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys),
                                                metadata=metadata)
            await call()
            deadline = time.perf_counter() + duration

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    await call()
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies

    latencies = sorted(asyncio.run(run()))
    results.put((len(latencies), latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]))


async def _echo_server() -> tuple[Any, int]:
    import grpc

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _load(context: Any, address: str, token: str, count: int, duration: float, concurrency: int, mode: str
          ) -> tuple[float, float, float]:
    results = context.Queue()
    child = context.Process(target=_callers, args=(address, token, count, duration, concurrency, mode, results))
    child.start()
    calls, p50, p99 = results.get(timeout=duration + 180)
    child.join(30)
    return calls / duration, p50 * 1000, p99 * 1000


CHECK_TARGETS = ("gat-cheliang", "zjt-fangchan", "rst-shebao", "swj-shui", "scj-gongshang", "bank-icbc")
CHECK_CATEGORIES = ("公安/车辆", "住建/房产", "人社/社保", "税务", "市场监管/工商", "银行")
CHECKS = 30


def _responders(url: str, names: list[str], keys: str, members: list[str], ready: Any, stop: Any) -> None:
    """A child process: one reference responder per target (threads), each holding every member."""
    from adapters.responder import Responder

    dataset = {"members": {m: {"存款余额": 1000.0 + i} for i, m in enumerate(members)}}
    responders = [Responder(url, name, dataset, Path(keys) / name) for name in names]
    threads = [threading.Thread(target=r.run, daemon=True) for r in responders]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the queues are declared
    ready.put(True)
    stop.get()
    for responder in responders:
        responder.stop()
    for thread in threads:
        thread.join(5)


def _checks(node: Any, suffix: str) -> tuple[float, float]:
    """CHECKS household checks of 5 members × 6 targets, one after the other, each from FileCheck to the
    last answer stored: (p50, p99) in ms."""
    from catalog.checks import Member
    from security.identity import Principal

    centre = Principal("bench", CONSUMER, frozenset({"consumer"}))
    members = [Member(id_number(n), f"王{n}") for n in range(1, 6)]
    targets = [(f"{name}-{suffix}", category) for name, category in zip(CHECK_TARGETS, CHECK_CATEGORIES, strict=True)]
    latencies = []
    for _ in range(CHECKS):
        started = time.perf_counter()
        check = node.checks.file_check(centre, members, "bench", "SQ-BENCH", targets,
                                       dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
        while not node.checks.get_check(centre, check.id).complete:
            time.sleep(0.005)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def _run_backend(prefix: str, url: str, count: int, duration: float, concurrency: int, directory: Path) -> None:
    from node import bootstrap
    from node.config import load_config
    from node.grpc.server import build_server
    from security.identity import issue_dev_token

    context = multiprocessing.get_context("spawn")
    data = directory / prefix
    data.mkdir()
    done = context.Queue()
    setup = context.Process(target=_setup, args=(str(data), url, count, done))
    setup.start()
    setup.join()
    if setup.exitcode != 0 or done.empty():
        raise RuntimeError(f"{prefix}: the setup process failed (exit {setup.exitcode}); see its traceback above")
    from adapters.responder import load_key

    suffix = uuid.uuid4().hex[:6]
    names = [f"{name}-{suffix}" for name in CHECK_TARGETS]
    (data / "peers").mkdir()
    for name in names:
        load_key(directory / "responders" / name, name)
        (data / "peers" / f"{name}.json").write_text(
            (directory / "responders" / name / "public-keys.json").read_text(), encoding="utf-8")
    config = load_config(data, environ={})
    config = replace(config, node=replace(config.node, id=f"bench{suffix}"))
    node = bootstrap.build(config, apply_migrations=False)
    token = issue_dev_token(config.keys_dir, config.node.id, config.audience, subject="bench",
                            department_code=CONSUMER, roles=["consumer"])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        echo, echo_port = asyncio.run_coroutine_threadsafe(_echo_server(), loop).result(30)
        raw, _, _ = _load(context, f"127.0.0.1:{echo_port}", token, count, duration, concurrency, "echo")
        asyncio.run_coroutine_threadsafe(echo.stop(0), loop).result(30)
        server, port, _ = asyncio.run_coroutine_threadsafe(build_server(node, "127.0.0.1:0"), loop).result(30)
        address = f"127.0.0.1:{port}"
        verify, verify_p50, verify_p99 = _load(context, address, token, count, duration, concurrency, "verify")
        query, query_p50, query_p99 = _load(context, address, token, count, duration, concurrency, "query")
        asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
        ready, stop = context.Queue(), context.Queue()
        responders = context.Process(target=_responders, args=(
            config.rabbitmq.url, names, str(directory / "responders"), [id_number(n) for n in range(1, 6)], ready,
            stop))
        responders.start()
        ready.get(timeout=120)
        from node.grpc.server import _status_name

        node.start_rpc(_status_name)
        try:
            check_p50, check_p99 = _checks(node, suffix)
        finally:
            stop.put(True)
            responders.join(30)
            _delete_queues(config.rabbitmq.url, [f"exnode.{n}.rpc" for n in names] + [
                f"exnode.{config.node.id}.{q}" for q in ("rpc", "rpc-reply", "dlq")], f"exnode.{config.node.id}.dlx")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        node.close()
    figures = {
        "records": count, "verify_per_s": verify, "raw_unary_per_s": raw, "verify_vs_raw_ratio": verify / raw,
        "verify_p50_ms": verify_p50, "verify_p99_ms": verify_p99, "query_per_s": query,
        "query_keys_per_call": 10, "query_p50_ms": query_p50, "query_p99_ms": query_p99,
        "checks": CHECKS, "check_members": 5, "check_targets": len(names), "check_p50_ms": check_p50,
        "check_p99_ms": check_p99,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name, value in figures.items():
        print(f"{prefix}_{name}={value:.3f}" if isinstance(value, float) else f"{prefix}_{name}={value}", flush=True)


def _delete_queues(url: str, queues: list[str], exchange: str) -> None:
    import pika

    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        channel.exchange_delete(exchange)


def main(count: int = 1_000_000, duration: float = 10.0, concurrency: int = 32, urls: list[str] | None = None) -> int:
    """Run on each database URL (default: a temporary SQLite file and a throw-away PostgreSQL database).
    Given URLs must name empty databases. The server's peak RSS is per backend process state: the
    backends run one after the other in this process, so the second one's figure includes the first's."""
    from sqlalchemy.engine import make_url

    from node.bench.catalog import _postgres_database

    if count < 1:
        raise ValueError("count must be at least 1")
    print(f"bench=verify records={count} duration_s={duration} concurrency={concurrency}", file=sys.stderr)
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-verify-")))
        if urls is None:
            urls = [f"sqlite:///{directory / 'bench.db'}", stack.enter_context(_postgres_database())]
        used: set[str] = set()
        for url in urls:
            prefix = make_url(url).get_backend_name()
            if prefix in used:
                prefix = f"{prefix}{len(used) + 1}"
            used.add(prefix)
            _log(f"{prefix}: {count} records")
            _run_backend(prefix, url, count, duration, concurrency, directory)
    return 0
