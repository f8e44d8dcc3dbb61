"""``exnode bench watchers``: many concurrent WatchCatalog streams on one node.

Why: a ministry node is watched by every department below it. This serves a node in this process (the
sample catalog, SQLite), opens N live streams from a separate client process (its own GIL), waits until
each has had its CAUGHT_UP marker, and reads the node's resident memory before and after (memory per
watcher). Then it commits COMMITS publications, one at a time, and the client notes when each stream
receives each one: the latency from the commit's return to every watcher's receipt (same clock, one
machine) gives ``commit_to_all_watchers_p99_ms``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

COMMITS = 20
CHANNELS = 20
"""Streams are spread over this many HTTP/2 connections (one per department office, say)."""


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _watchers(address: str, token: str, count: int, expected: int, ready: Any, results: Any) -> None:
    """The client process: ``count`` streams, each noting when it receives each PUBLISHED event."""
    import grpc
    from exnode.v1 import catalog_pb2 as pb
    from exnode.v1 import catalog_pb2_grpc

    async def run() -> list[tuple[str, float]]:
        metadata = (("authorization", f"Bearer {token}"),)
        channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
        received: list[tuple[str, float]] = []
        caught_up = asyncio.Semaphore(0)

        async def watch(index: int) -> None:
            stub = catalog_pb2_grpc.CatalogServiceStub(channels[index % CHANNELS])
            seen = 0
            async for event in stub.WatchCatalog(pb.WatchCatalogRequest(), metadata=metadata):
                if event.kind == pb.CAUGHT_UP:
                    caught_up.release()
                elif event.kind == pb.PUBLISHED_EVENT:
                    received.append((event.code, time.time()))
                    seen += 1
                    if seen >= expected:
                        return

        tasks = [asyncio.create_task(watch(i)) for i in range(count)]
        for _ in range(count):
            await caught_up.acquire()
        ready.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
        for channel in channels:
            await channel.close()
        return received

    results.put(asyncio.run(run()))


def main(count: int = 1_000) -> int:
    from node.bench.catalog import Generator
    from node.bench.rpc import bench_node
    from node.grpc.server import build_server
    from security.identity import Principal, issue_dev_token

    with tempfile.TemporaryDirectory(prefix="exnode-bench-watchers-") as tmp:
        config, node = bench_node(Path(tmp))
        token = issue_dev_token(config.keys_dir, config.node.id, config.audience, subject="bench",
                                department_code="11150100011627354Q", roles=["consumer"])
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server, port, _ = asyncio.run_coroutine_threadsafe(build_server(node, "127.0.0.1:0"), loop).result(30)
        rss_before = _rss_mb()
        context = multiprocessing.get_context("spawn")
        ready, results = context.Event(), context.Queue()
        child = context.Process(target=_watchers, args=(f"127.0.0.1:{port}", token, count, COMMITS, ready, results))
        child.start()
        if not ready.wait(300):
            raise RuntimeError(f"{count} watchers did not all catch up within 300 s")
        time.sleep(1.0)
        rss_after = _rss_mb()
        system = Principal.system("bench")
        committed: dict[str, float] = {}
        generator = Generator()
        for _ in range(COMMITS):
            meta = generator.one([])
            node.catalog.create(system, meta)
            node.catalog.publish(system, meta.code)
            committed[meta.code] = time.time()
            time.sleep(0.5)
        received = results.get(timeout=300)
        child.join(30)
        asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        node.close()
    latencies = sorted(at - committed[code] for code, at in received if code in committed)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan")
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    figures = {
        "watchers": count,
        "deliveries": len(latencies),
        "deliveries_expected": count * COMMITS,
        "node_rss_mb_before_watchers": rss_before,
        "node_rss_mb_with_watchers": rss_after,
        "node_kb_per_watcher": (rss_after - rss_before) * 1024 / count,
        "commit_to_all_watchers_p50_ms": p50 * 1000,
        "commit_to_all_watchers_p99_ms": p99 * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name, value in figures.items():
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)
    print(f"[bench watchers] {len(latencies)} of {count * COMMITS} deliveries", file=sys.stderr)
    return 0
