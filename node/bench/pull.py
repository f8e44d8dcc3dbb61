"""``exnode bench pull``: a verified nightly pull of N generated records through gRPC, on SQLite and on
PostgreSQL, with the reference client's code path (``node.clients.pull.pull``).

Setup (not timed): a node data directory, the sample catalog, and N records of the 低保 resource inserted in
bulk with their positions through the storage layer (COPY on PostgreSQL), as if the sequencer had
numbered them. Then ``exnode serve`` runs as its own process and the client runs in another (spawned)
process, so each one's ``peak_rss_mb`` is its own. Timed: from the client's start message to the
published, verified pull directory (every batch's root and signature, the manifest's count, root and
signature, files written and fsynced, acknowledgements stored).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

PROVIDER = "11100000MB01284764"  # 民政部社会救助司: runs the node and pulls as its platform
LOW_INCOME = "311140001/000001"
CHUNK = 20_000


def _log(message: str) -> None:
    print(f"[bench pull] {message}", file=sys.stderr, flush=True)


def _emit(name: str, value: float) -> None:
    print(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def _payload(n: int) -> dict[str, Any]:
    return {"姓名": f"张{n}", "公民身份号码": "360426199101010071", "性别": "1", "出生日期": "1991-01-01",
            "行政区划代码": "150102001000", "保障类别": "1", "户主公民身份号码": "360426199101010071",
            "与户主关系": "01", "家庭保障人口数": 3, "月保障金额": 1234.5, "纳入保障日期": "2025-06-01",
            "是否重点保障对象": False, "联系电话": "13812345678", "家庭住址": f"呼和浩特市新城区某街道{n}号"}


def _rows(start: int, stop: int, at: dt.datetime) -> list[dict[str, Any]]:
    rows = []
    for n in range(start, stop):
        payload = json.dumps(_payload(n), ensure_ascii=False, sort_keys=True)
        rows.append({"provider_code": PROVIDER, "resource_code": LOW_INCOME, "record_id": f"DB-{n:08d}",
                     "sequence": n, "operation": "UPSERT", "payload": payload,
                     "content_hash": hashlib.sha256(payload.encode()).hexdigest(), "batch_id": f"bench-{n // 5000}",
                     "received_at": at, "position": n})
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _postgres_database() -> Iterator[str]:
    from node.bench.catalog import _postgres_database as database

    with database() as url:
        yield url


def _prepare(data: Path, url: str, count: int, node_id: str) -> None:
    """A node data directory with the sample catalog and ``count`` positioned records."""
    from node import bootstrap
    from node.bootstrap import load_sample
    from node.storage.pull_repository import PullRepository
    from security.identity import create_dev_issuer_key
    from security.keys import KeyStore, write_public_keys

    data.mkdir(parents=True, exist_ok=True)
    keys = KeyStore.create(data / "keys")
    write_public_keys(keys, node_id)
    create_dev_issuer_key(data / "keys")
    (data / "exnode.toml").write_text(
        f'[node]\nid = "{node_id}"\ndepartment_code = "{PROVIDER}"\n'
        f'[database]\nurl = "{url}"\n[auth]\ntrust_dev_issuer = true\n'
        '[exchange]\ndispatch = false\nplatforms_file = ""\n', encoding="utf-8")
    from node.config import load_config

    node = bootstrap.build(load_config(data, environ={}), start_audit=False)
    try:
        load_sample(node)
        at = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        for start in range(1, count + 1, CHUNK):
            with node.engine.begin() as connection:
                PullRepository(connection).add_positioned(_rows(start, min(start + CHUNK, count + 1), at))
        _log(f"inserted {count} records in {time.perf_counter() - started:.1f} s")
    finally:
        node.close()


def _client(address: str, token: str, keys_file: str, out: str, results: Any) -> None:
    """The reference client in its own process: pull everything, verified, into ``out``."""
    import grpc
    from exnode.v1 import exchange_pb2_grpc

    from node.clients.pull import pull, trusted_from_document

    trusted = trusted_from_document(json.loads(Path(keys_file).read_text(encoding="utf-8")))
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
    metadata = [("authorization", f"Bearer {token}")]
    started = time.perf_counter()
    outcome = pull(lambda requests: stub.Pull(requests, metadata=metadata), trusted, Path(out))
    elapsed = time.perf_counter() - started
    results.put({"seconds": elapsed, "records": outcome.records, "batches": outcome.batches,
                 "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    channel.close()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_for(address: str, process: subprocess.Popen, log: Path) -> None:
    import grpc

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exnode serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        with grpc.insecure_channel(address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                continue
    raise RuntimeError(f"exnode serve did not listen on {address} within 60 s")


def _run_backend(prefix: str, url: str, count: int, directory: Path) -> None:
    from security.identity import issue_dev_token

    node_id = f"b{uuid.uuid4().hex[:10]}"
    data = directory / f"{prefix}-node"
    _prepare(data, url, count, node_id)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = directory / f"{prefix}-serve.log"
    environment = {**os.environ, "EXNODE_EXCHANGE_DISPATCH": "false"}
    with open(log, "wb") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--listen", address,
                                   "--metrics-listen", f"127.0.0.1:{_free_port()}"], stdout=log_file,
                                  stderr=subprocess.STDOUT, env=environment)
    try:
        _wait_for(address, server, log)
        token = issue_dev_token(data / "keys", node_id, f"exnode:{node_id}", subject="bench",
                                department_code=PROVIDER, roles=["platform"])
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        client = context.Process(target=_client, args=(address, token, str(data / "keys" / "public-keys.json"),
                                                        str(directory / f"{prefix}-out"), results))
        client.start()
        figures = results.get(timeout=3600)
        client.join(60)
        node_rss = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    if figures["records"] != count:
        raise RuntimeError(f"{prefix}: pulled {figures['records']} records, expected {count}")
    _emit(f"{prefix}_pull_records_per_s", float(count / figures["seconds"]))
    _emit(f"{prefix}_pull_seconds", float(figures["seconds"]))
    _emit(f"{prefix}_pull_batches", figures["batches"])
    _emit(f"{prefix}_client_peak_rss_mb", float(figures["rss_mb"]))
    _emit(f"{prefix}_node_peak_rss_mb", float(node_rss))


def main(count: int = 1_000_000, urls: list[str] | None = None) -> int:
    """Run on each database URL (default: a temporary SQLite file and a throw-away PostgreSQL database).
    Given URLs must name empty databases."""
    if count < 1:
        raise ValueError("count must be at least 1")
    from sqlalchemy.engine import make_url

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-pull-")))
        if urls is None:
            urls = [f"sqlite:///{directory / 'bench.db'}", stack.enter_context(_postgres_database())]
        used: set[str] = set()
        for url in urls:
            prefix = make_url(url).get_backend_name()
            if prefix in used:
                prefix = f"{prefix}{len(used) + 1}"
            used.add(prefix)
            _log(f"{prefix}: {count} records")
            _run_backend(prefix, url, count, directory)
    _emit("records", count)
    return 0
