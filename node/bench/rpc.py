"""``exnode bench rpc``: catalog RPCs per second with and without the audit trail, in one run.

Why this shape: the audit trail's cost is what matters, so both runs serve the same sample catalog with
the same authentication, and differ only in the audit writer (the real group-commit writer, or one that
acknowledges at once). The server runs in this process; the load comes from a separate process (its own
GIL), many concurrent calls on one channel: GetResource and a Chinese-text ListResources, alternating.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import resource
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from node.config import load_config
from security.audit import AuditRecord


class _NoAudit:
    """Acknowledges entries at once without writing them: the baseline the overhead is measured against."""

    def __init__(self) -> None:
        self.count = 0

    def submit(self, record: AuditRecord) -> concurrent.futures.Future[int]:
        self.count += 1
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        future.set_result(self.count)
        return future


def _client(address: str, token: str, codes: list[str], duration: float, concurrency: int,
            results: Any) -> None:
    """The load generator (a child process)."""
    import grpc
    from exnode.v1 import catalog_pb2 as pb
    from exnode.v1 import catalog_pb2_grpc

    async def run() -> tuple[int, list[float]]:
        metadata = (("authorization", f"Bearer {token}"),)
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(address) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            await stub.GetResource(pb.GetResourceRequest(code=codes[0]), metadata=metadata)
            deadline = time.perf_counter() + duration

            async def worker(index: int) -> None:
                n = index
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    if n % 2:
                        await stub.ListResources(pb.ListResourcesRequest(query="救助", page_size=20), metadata=metadata)
                    else:
                        await stub.GetResource(pb.GetResourceRequest(code=codes[n % len(codes)]), metadata=metadata)
                    latencies.append(time.perf_counter() - start)
                    n += 1

            await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return len(latencies), latencies

    count, latencies = asyncio.run(run())
    latencies.sort()
    results.put((count, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]))


def bench_node(data: Path, database_url: str = "") -> tuple[Any, Any]:
    """A development node in ``data`` (keys, the dev issuer, migrations, the sample catalog): the
    config and the built node, for benchmarks that serve it in their own process."""
    from node import bootstrap
    from node.bootstrap import load_sample
    from node.storage.database import migrate
    from security.identity import create_dev_issuer_key
    from security.keys import KeyStore

    KeyStore.create(data / "keys")
    create_dev_issuer_key(data / "keys")
    config = load_config(data, environ={})
    config = replace(config, auth=replace(config.auth, trust_dev_issuer=True),
                     database=replace(config.database, url=database_url or f"sqlite:///{data / 'exnode.db'}"))
    migrate(config.database_url)
    node = bootstrap.build(config, apply_migrations=False)
    load_sample(node)
    return config, node


def _run_mode(audited: bool, duration: float, concurrency: int, database_url: str) -> dict[str, float]:
    from node.grpc.server import build_server
    from security.identity import Principal, issue_dev_token

    with tempfile.TemporaryDirectory(prefix="exnode-bench-rpc-") as tmp:
        config, node = bench_node(Path(tmp), database_url)
        codes = [r.code for r in node.catalog.export(Principal.system("bench"), None)]
        token = issue_dev_token(config.keys_dir, config.node.id, config.audience, subject="bench",
                                department_code="11100000MB01284764", roles=["consumer"])
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        writer = None if audited else _NoAudit()
        server, port, _ = asyncio.run_coroutine_threadsafe(
            build_server(node, "127.0.0.1:0", audit_writer=writer), loop).result(30)  # type: ignore[arg-type]
        entries_before, batches_before = node.audit_writer.entries, node.audit_writer.batches
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        child = context.Process(target=_client, args=(f"127.0.0.1:{port}", token, codes, duration, concurrency,
                                                      results))
        started = time.perf_counter()
        child.start()
        count, p50, p99 = results.get(timeout=duration + 120)
        child.join(30)
        elapsed = time.perf_counter() - started
        entries = node.audit_writer.entries - entries_before
        batches = node.audit_writer.batches - batches_before
        verified = node.audit.verify().ok if audited else True
        asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        node.close()
    return {"rpc_per_s": count / duration, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000, "rpcs": count,
            "audit_entries": entries, "audit_batches": batches, "audit_verified": float(verified),
            "elapsed_s": elapsed}


def main(duration: float = 10.0, concurrency: int = 32, database_url: str = "") -> int:
    """Print name=value figures; the audit overhead is the ratio of the two runs."""
    print(f"bench=rpc duration_s={duration} concurrency={concurrency} "
          f"database={'sqlite' if not database_url else database_url.split('://')[0]}", file=sys.stderr)
    baseline = _run_mode(False, duration, concurrency, database_url)
    audited = _run_mode(True, duration, concurrency, database_url)
    figures = {
        "catalog_rpc_per_s_without_audit": baseline["rpc_per_s"],
        "catalog_rpc_per_s_with_audit": audited["rpc_per_s"],
        "with_audit_vs_without_ratio": audited["rpc_per_s"] / baseline["rpc_per_s"],
        "audit_overhead_pct": 100 * (1 - audited["rpc_per_s"] / baseline["rpc_per_s"]),
        "p50_ms_without_audit": baseline["p50_ms"],
        "p99_ms_without_audit": baseline["p99_ms"],
        "p50_ms_with_audit": audited["p50_ms"],
        "p99_ms_with_audit": audited["p99_ms"],
        "audit_entries_written": audited["audit_entries"],
        "audit_entries_per_commit": audited["audit_entries"] / max(1, audited["audit_batches"]),
        "audit_chain_verified": audited["audit_verified"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name, value in figures.items():
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}")
    return 0
