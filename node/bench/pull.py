"""``exnode bench pull``: a verified nightly pull of N generated records through gRPC, on SQLite and on
PostgreSQL, with the reference client's code path (``node.clients.pull.pull``).

Setup (not timed): a node data directory, the sample catalog, and N records of the 低保 resource inserted in
bulk with their positions through the storage layer (COPY on PostgreSQL), as if the sequencer had
numbered them. Then ``exnode serve`` runs as its own process and the client runs in another (spawned)
process, so each one's ``peak_rss_mb`` is its own. Timed: from the client's start message to the
published, verified pull directory (every batch's root and signature, the manifest's count, root and
signature, files written and fsynced, acknowledgements stored).

``--ingest`` (``main_ingest``): the path real data takes. For each count, a fresh database and node; the
records go in as a provider sends them (signed batches over one pipelined ``IngestStream`` to the served
node, from a process of its own), so they arrive without positions, in a table whose statistics are
those of an empty one; then the first pull after it, timed as above (it includes the sequencer, which
numbers the whole night's records when the pull starts). The raw limit, measured in the same run: a
plain ``SELECT`` of every record in position order, streamed. The growth per 10× records is
(t_large / t_small) ** (1 / log10(n_large / n_small)): 10 means linear.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
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

from node.bench import progress

PROVIDER = "11100000MB01284764"  # 民政部社会救助司: runs the node and pulls as its platform
LOW_INCOME = "311140001/000001"
CHUNK = 20_000
INGEST_BATCH = 500
"""Records per signed batch in ``--ingest`` mode (as the relay bench's provider sends them)."""


def _log(message: str) -> None:
    print(f"[bench pull] {message}", file=sys.stderr, flush=True)


def _emit(name: str, value: float, digits: int = 1) -> None:
    print(f"{name}={value:.{digits}f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def _payload(n: int) -> dict[str, Any]:
    return {"姓名": f"张{n}", "公民身份号码": "360426199101010071", "性别": "1", "出生日期": "1991-01-01",
            "行政区划代码": "150102001000", "保障类别": "1", "户主公民身份号码": "360426199101010071",
            "与户主关系": "01", "家庭保障人口数": 3, "月保障金额": 1234.5, "纳入保障日期": "2025-06-01",
            "是否重点保障对象": False, "联系电话": "13812345678", "家庭住址": f"呼和浩特市新城区某街道{n}号"}


def _rows(start: int, stop: int, at: dt.datetime) -> list[dict[str, Any]]:
    """Rows as ingest stores them: the payload's canonical text and the SHA-256 of the record's canonical form."""
    from catalog.records import canonical_from_parts, canonical_payload

    rows = []
    for n in range(start, stop):
        payload = canonical_payload(_payload(n))
        record_id = f"DB-{n:08d}"
        digest = hashlib.sha256(canonical_from_parts(PROVIDER, LOW_INCOME, record_id, n, "UPSERT", payload))
        rows.append({"provider_code": PROVIDER, "resource_code": LOW_INCOME, "record_id": record_id,
                     "sequence": n, "operation": "UPSERT", "payload": payload, "content_hash": digest.hexdigest(),
                     "batch_id": f"bench-{n // 5000}", "received_at": at, "position": n})
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


def _prepare(data: Path, url: str, count: int, node_id: str, sealed: bool = True) -> None:
    """A node data directory with the sample catalog and ``count`` positioned records (none: 0), encrypted
    at rest as ingest stores them (``sealed``), or in clear as rows from before encryption at rest are: the
    same run measures the pull over both, so the cost of opening every payload is a ratio."""
    from node import bootstrap
    from node.bootstrap import load_sample
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
            with node.uow(write=True) as uow:
                if not sealed:
                    uow.pull.sealer = None
                uow.pull.add_positioned(_rows(start, min(start + CHUNK, count + 1), at))
                uow.commit()
            progress.step(f"bench pull: inserting {count} records", min(start + CHUNK - 1, count), count)
        if count:
            _log(f"inserted {count} records in {time.perf_counter() - started:.1f} s")
    finally:
        node.close()


def _client(address: str, token: str, keys_file: str, out: str, results: Any,
            sealing: tuple[str, bytes] | None = None) -> None:
    """The reference client in its own process: pull everything, verified, into ``out`` (``sealing``: ask
    for batches sealed to the department's key and open them with this private key, from the beginning)."""
    import grpc
    from exnode.v1 import exchange_pb2_grpc

    from node.clients.pull import pull, trusted_from_document
    from security.sealing import ConsumerPrivateKey

    key = ConsumerPrivateKey(*sealing) if sealing else None

    trusted = trusted_from_document(json.loads(Path(keys_file).read_text(encoding="utf-8")))
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
    metadata = [("authorization", f"Bearer {token}")]
    first: list[float] = []
    started = time.perf_counter()
    outcome = pull(lambda requests: _FirstTimed(stub.Pull(requests, metadata=metadata), first), trusted, Path(out),
                   key=key, replay=key is not None)
    elapsed = time.perf_counter() - started
    results.put({"seconds": elapsed, "header_seconds": first[0] - started if first else 0.0,
                 "records": outcome.records, "batches": outcome.batches,
                 "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    channel.close()


class _FirstTimed:
    """The node's answer stream, noting when its first message (the header) arrived: the node sends it
    once it has opened the pull, which includes numbering the records ingest left without positions."""

    def __init__(self, responses: Any, first: list[float]) -> None:
        self._responses = responses
        self._first = first

    def __iter__(self) -> _FirstTimed:
        return self

    def __next__(self) -> Any:
        item = next(self._responses)
        if not self._first:
            self._first.append(time.perf_counter())
        return item

    def cancel(self) -> None:
        self._responses.cancel()


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


@contextmanager
def _serving(data: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``exnode serve`` of ``data`` as its own process (dispatcher off), until the block ends."""
    address = f"127.0.0.1:{_free_port()}"
    environment = {**os.environ, "EXNODE_EXCHANGE_DISPATCH": "false", "EXNODE_CONSOLE_LISTEN": "off"}
    with open(log, "wb") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--listen", address,
                                   "--metrics-listen", f"127.0.0.1:{_free_port()}"], stdout=log_file,
                                  stderr=subprocess.STDOUT, env=environment)
    try:
        _wait_for(address, server, log)
        yield address, server
    finally:
        server.terminate()
        server.wait(30)


def _register_encryption_key(address: str, data: Path, node_id: str) -> tuple[str, bytes]:
    """An encryption key for the pulling department, registered with the node (a sealed pull's key)."""
    import grpc
    from exnode.v1 import exchange_pb2 as pb
    from exnode.v1 import exchange_pb2_grpc

    from security.identity import issue_dev_token
    from security.sealing import ConsumerPrivateKey

    key = ConsumerPrivateKey.generate()
    token = issue_dev_token(data / "keys", node_id, f"exnode:{node_id}", subject="bench", department_code=PROVIDER,
                            roles=["catalog_admin"])
    with grpc.insecure_channel(address) as channel:
        exchange_pb2_grpc.ExchangeServiceStub(channel).RegisterEncryptionKey(
            pb.RegisterEncryptionKeyRequest(department_code=PROVIDER, algorithm=key.algorithm,
                                            public_pem=key.public_pem),
            metadata=[("authorization", f"Bearer {token}")])
    return key.algorithm, key.private_pem


def _pull(address: str, data: Path, node_id: str, out: Path, sealing: tuple[str, bytes] | None = None
          ) -> dict[str, Any]:
    """The reference client's verified pull of everything, in a spawned process; its figures."""
    from security.identity import issue_dev_token

    token = issue_dev_token(data / "keys", node_id, f"exnode:{node_id}", subject="bench",
                            department_code=PROVIDER, roles=["platform"])
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    client = context.Process(target=_client, args=(address, token, str(data / "keys" / "public-keys.json"),
                                                    str(out), results, sealing))
    client.start()
    figures = results.get(timeout=3600)
    client.join(60)
    return figures


def _run_backend(prefix: str, url: str, count: int, directory: Path, sealed: bool = True) -> float:
    """The pull of ``count`` records; with ``sealed`` (records encrypted at rest) a second pull of the same
    records follows with every batch sealed to the department's key (``<prefix>_sealed_pull_*``)."""
    node_id = f"b{uuid.uuid4().hex[:10]}"
    data = directory / f"{prefix}-node"
    _prepare(data, url, count, node_id, sealed)
    with _serving(data, directory / f"{prefix}-serve.log") as (address, server):
        figures = _pull(address, data, node_id, directory / f"{prefix}-out")
        if sealed:
            _log(f"{prefix}: the same {count} records, every batch sealed to the department's key")
            to_consumer = _pull(address, data, node_id, directory / f"{prefix}-sealed-out",
                                _register_encryption_key(address, data, node_id))
            if to_consumer["records"] != count:
                raise RuntimeError(f"{prefix}: the sealed pull gave {to_consumer['records']} records, expected {count}")
            _emit(f"{prefix}_sealed_pull_records_per_s", float(count / to_consumer["seconds"]))
            _emit(f"{prefix}_sealed_pull_seconds", float(to_consumer["seconds"]))
            _emit(f"{prefix}_sealed_vs_unsealed_pull_ratio", figures["seconds"] / to_consumer["seconds"], 3)
        node_rss = _peak_rss_mb(server.pid)
    if figures["records"] != count:
        raise RuntimeError(f"{prefix}: pulled {figures['records']} records, expected {count}")
    _emit(f"{prefix}_pull_records_per_s", float(count / figures["seconds"]))
    _emit(f"{prefix}_pull_seconds", float(figures["seconds"]))
    _emit(f"{prefix}_pull_batches", figures["batches"])
    _emit(f"{prefix}_client_peak_rss_mb", float(figures["rss_mb"]))
    _emit(f"{prefix}_node_peak_rss_mb", float(node_rss))
    return count / figures["seconds"]


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
            _log(f"{prefix}: {count} records, encrypted at rest")
            sealed = _run_backend(prefix, url, count, directory)
            if make_url(url).get_backend_name() == "sqlite":  # a given PostgreSQL database is used once
                _log(f"{prefix}: {count} records stored in clear (the same pull without decryption)")
                clear = _run_backend(f"{prefix}_clear", f"sqlite:///{directory / f'{prefix}-clear.db'}", count,
                                     directory, sealed=False)
                _emit(f"{prefix}_encrypted_vs_clear_ratio", sealed / clear, 3)
    _emit("records", count)
    return 0


# -- --ingest: the records arrive through the pipeline ----------------------------------------------------
def _provider(address: str, token: str, private: bytes, kid: str, count: int, results: Any) -> None:
    """A provider in its own process: ``count`` records of 低保 in signed batches of ``INGEST_BATCH`` over
    one pipelined IngestStream, built as they are sent (a million records held at once would not fit a
    shared machine). Reports the time from the first send to the last answer."""
    import grpc
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from exnode.v1 import exchange_pb2 as pb
    from exnode.v1 import exchange_pb2_grpc

    from catalog.records import Operation, Record
    from node.pipeline import provider_batch

    class Signer:
        def __init__(self) -> None:
            self._key = ed25519.Ed25519PrivateKey.from_private_bytes(private)
            self.kid = kid

        def sign(self, data: bytes) -> bytes:
            return self._key.sign(data)

    signer = Signer()

    def batches() -> Iterator[Any]:
        for start in range(1, count + 1, INGEST_BATCH):
            records = [Record(f"DB-{n:08d}", n, Operation.UPSERT, _payload(n))
                       for n in range(start, min(start + INGEST_BATCH, count + 1))]
            batch = provider_batch(PROVIDER, LOW_INCOME, records, signer)
            yield pb.RecordBatch(
                batch_id=batch.batch_id, provider_code=batch.provider_code, resource_code=batch.resource_code,
                merkle_root=batch.merkle_root, key_id=batch.kid, signature=batch.signature,
                records=[pb.Record(id=r.id, sequence=r.sequence, operation=pb.UPSERT,
                                   payload=json.dumps(r.payload, ensure_ascii=False).encode()) for r in records])

    accepted = 0
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        grpc.channel_ready_future(channel).result(30)
        started = time.perf_counter()
        for answer in stub.IngestStream(batches(), metadata=(("authorization", f"Bearer {token}"),)):
            accepted += answer.accepted
        seconds = time.perf_counter() - started
    results.put({"seconds": seconds, "accepted": accepted})


def _register_provider_key(address: str, data: Path, node_id: str) -> tuple[bytes, str]:
    """The provider's Ed25519 key registered with the node (RegisterKey, as a catalog administrator of
    the provider would); returns its raw private bytes and its key id."""
    import grpc
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from exnode.v1 import exchange_pb2 as pb
    from exnode.v1 import exchange_pb2_grpc

    from security.identity import issue_dev_token

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    token = issue_dev_token(data / "keys", node_id, f"exnode:{node_id}", subject="bench", department_code=PROVIDER,
                            roles=["catalog_admin"])
    with grpc.insecure_channel(address) as channel:
        kid = exchange_pb2_grpc.ExchangeServiceStub(channel).RegisterKey(
            pb.RegisterKeyRequest(department_code=PROVIDER, algorithm="Ed25519", public_pem=pem),
            metadata=(("authorization", f"Bearer {token}"),), timeout=30).key_id
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return private, kid


def _ingest(address: str, data: Path, node_id: str, count: int) -> dict[str, Any]:
    from security.identity import issue_dev_token

    private, kid = _register_provider_key(address, data, node_id)
    token = issue_dev_token(data / "keys", node_id, f"exnode:{node_id}", subject="bench", department_code=PROVIDER,
                            roles=["provider"])
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    provider = context.Process(target=_provider, args=(address, token, private, kid, count, results))
    provider.start()
    figures = results.get(timeout=7200)
    provider.join(60)
    if figures["accepted"] != count:
        raise RuntimeError(f"the node accepted {figures['accepted']} of {count} ingested records")
    return figures


def _raw_scan(url: str) -> tuple[int, float]:
    """The raw limit: every stored record (the columns a pull reads) in position order, one plain
    streamed SELECT, nothing done with the rows. Returns (rows, seconds)."""
    from sqlalchemy import text

    from node.storage.database import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            started = time.perf_counter()
            result = connection.execution_options(stream_results=True, yield_per=CHUNK).execute(text(
                "SELECT position, provider_code, resource_code, record_id, sequence, operation, payload"
                " FROM records ORDER BY position"))
            rows = sum(len(partition) for partition in result.partitions())
            return rows, time.perf_counter() - started
    finally:
        engine.dispose()


def _run_ingest(prefix: str, url: str, count: int, directory: Path) -> dict[str, float]:
    """Ingest ``count`` records through the served node, then the first pull; prints and returns figures."""
    node_id = f"b{uuid.uuid4().hex[:10]}"
    data = directory / f"{prefix}-{count}-node"
    _prepare(data, url, 0, node_id)
    with _serving(data, directory / f"{prefix}-{count}-serve.log") as (address, server):
        _log(f"{prefix}: ingesting {count} records in signed batches of {INGEST_BATCH}")
        ingested = _ingest(address, data, node_id, count)
        _log(f"{prefix}: ingested in {ingested['seconds']:.1f} s; first pull")
        pulled = _pull(address, data, node_id, directory / f"{prefix}-{count}-out")
        node_rss = _peak_rss_mb(server.pid)
    if pulled["records"] != count:
        raise RuntimeError(f"{prefix}: pulled {pulled['records']} records, expected {count}")
    scanned, raw_seconds = _raw_scan(url)
    if scanned != count:
        raise RuntimeError(f"{prefix}: the raw scan read {scanned} records, expected {count}")
    name = f"{prefix}_at_{count}"
    figures = {
        f"{name}_ingest_records_per_s": count / ingested["seconds"],
        f"{name}_ingest_seconds": ingested["seconds"],
        f"{name}_pull_first_after_ingest_records_per_s": count / pulled["seconds"],
        f"{name}_pull_first_after_ingest_seconds": pulled["seconds"],
        f"{name}_pull_first_header_seconds": pulled["header_seconds"],
        f"{name}_raw_scan_records_per_s": count / raw_seconds,
        f"{name}_pull_vs_raw_ratio": raw_seconds / pulled["seconds"],
        f"{name}_client_peak_rss_mb": pulled["rss_mb"],
        f"{name}_node_peak_rss_mb": node_rss,
    }
    for figure, value in figures.items():
        _emit(figure, float(value), 3 if figure.endswith("_ratio") else 2 if figure.endswith("_seconds") else 1)
    return figures


def main_ingest(counts: list[int] | None = None, urls: list[str] | None = None) -> int:
    """Ingest then first pull at each count, on each database (default: a temporary SQLite file and a
    throw-away PostgreSQL database, fresh for every count). A given URL must name an empty database, so
    it serves one count only."""
    counts = sorted(set(counts or [100_000, 1_000_000]))
    if counts[0] < 1:
        raise ValueError("counts must be at least 1")
    if urls is not None and len(counts) > 1:
        raise ValueError("a --database-url names one empty database: give one count with it (--counts N)")
    from sqlalchemy.engine import make_url

    backends = ([make_url(url).get_backend_name() for url in urls] if urls is not None
                else ["sqlite", "postgresql"])
    used: set[str] = set()
    for index, backend in enumerate(backends):
        prefix = backend if backend not in used else f"{backend}{len(used) + 1}"
        used.add(prefix)
        seconds: dict[int, float] = {}
        for count in counts:
            with ExitStack() as stack:
                directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-pull-")))
                if urls is not None:
                    url = urls[index]
                elif backend == "sqlite":
                    url = f"sqlite:///{directory / 'bench.db'}"
                else:
                    url = stack.enter_context(_postgres_database())
                figures = _run_ingest(prefix, url, count, directory)
            seconds[count] = figures[f"{prefix}_at_{count}_pull_first_after_ingest_seconds"]
        if len(counts) > 1:
            small, large = counts[0], counts[-1]
            growth = (seconds[large] / seconds[small]) ** (1 / math.log10(large / small))
            _emit(f"{prefix}_pull_first_growth_per_10x", float(growth), 2)
    return 0
