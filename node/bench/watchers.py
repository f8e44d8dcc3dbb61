"""``exnode bench watchers``: many concurrent WatchCatalog streams on one node.

Why: a ministry node is watched by every department below it. This serves a node in this process (the
sample catalog, SQLite), opens N live streams from a separate client process (its own GIL), waits until
each has had its CAUGHT_UP marker, and reads the node's resident memory before and after (memory per
watcher). Then it commits COMMITS publications, one at a time, and the client notes when each stream
receives each one: the latency from the commit's return to every watcher's receipt (same clock, one
machine) gives ``commit_to_all_watchers_p99_ms``; ``commit_to_last_watcher_median_ms`` is, per commit, when
the last of the watchers had it (median over the commits: one commit stalled by the shared machine moves the
p99 of 20,000 deliveries but not this), and ``commit_to_node_send_*`` when the node handed it to the streams.
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
PER_DEPARTMENT = 50
"""Streams per department: below ``server.department_max_streams`` (64). Why several departments: a ministry
node is watched by the departments below it, each within its own stream limit; one department's 1,000 streams
were refused from the 65th on (RESOURCE_EXHAUSTED), so the run never caught up."""


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _departments(count: int) -> list[str]:
    from catalog.codes import credit_code_check_character

    codes = []
    for index in range(max(1, -(-count // PER_DEPARTMENT))):
        first17 = f"1115010001162{index:04d}"
        codes.append(first17 + credit_code_check_character(first17))
    return codes


def _watchers(address: str, tokens: list[str], count: int, expected: int, ready: Any, results: Any,
              python_gc: bool) -> None:
    """The client process: ``count`` streams, each noting when it receives each PUBLISHED event. It stands for
    20 departments' processes, so it collects as rarely as the node does (one process holding all 1,000
    streams would otherwise stall every stream at each full collection: the harness's pause, not the node's)."""
    import grpc

    if not python_gc:
        from node.ops.startup import tune_gc

        tune_gc()
    from exnode.v1 import catalog_pb2 as pb
    from exnode.v1 import catalog_pb2_grpc

    async def run() -> list[tuple[str, float]]:
        channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
        received: list[tuple[str, float]] = []
        caught_up = asyncio.Semaphore(0)

        failures: list[BaseException] = []

        async def watch(index: int) -> None:
            stub = catalog_pb2_grpc.CatalogServiceStub(channels[index % CHANNELS])
            metadata = (("authorization", f"Bearer {tokens[index % len(tokens)]}"),)
            seen = 0
            try:
                async for event in stub.WatchCatalog(pb.WatchCatalogRequest(), metadata=metadata):
                    if event.kind == pb.CAUGHT_UP:
                        caught_up.release()
                    elif event.kind == pb.PUBLISHED_EVENT:
                        received.append((event.code, time.time()))
                        seen += 1
                        if seen >= expected:
                            return
            except grpc.aio.AioRpcError as error:  # say why instead of waiting 300 s for a marker that never comes
                failures.append(error)
                caught_up.release()

        tasks = [asyncio.create_task(watch(i)) for i in range(count)]
        for _ in range(count):
            await caught_up.acquire()
        if failures:
            first = failures[0]
            raise RuntimeError(f"{len(failures)} of {count} watch streams failed, first: {first.code()} "  # type: ignore[attr-defined]
                               f"{first.details()}")  # type: ignore[attr-defined]
        ready.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
        for channel in channels:
            await channel.close()
        return received

    results.put(asyncio.run(run()))


def _record_sends(feed: Any) -> list[tuple[str, float]]:
    """When the node hands each PUBLISHED event to a stream (the feed's ``follow`` wrapped on this one
    node): the node's share of the latency, apart from the client process's own turn through 1,000 streams."""
    sent: list[tuple[str, float]] = []
    follow = feed.follow

    async def recording(*args: Any, **kwargs: Any) -> Any:
        async for item in follow(*args, **kwargs):
            if getattr(item[0], "kind", "") == "PUBLISHED":
                sent.append((item[0].code, time.time()))
            yield item

    feed.follow = recording
    return sent


def _gc_pauses() -> list[tuple[int, float]]:
    """(generation, seconds) of each of this process's cyclic collections from now on: how much of the p99
    the collector's pauses explain."""
    import gc

    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(note)
    return pauses


def main(count: int = 1_000, python_gc: bool = False) -> int:
    from node.bench.catalog import Generator
    from node.bench.rpc import bench_node
    from node.grpc.server import build_server
    from security.identity import Principal, issue_dev_token

    with tempfile.TemporaryDirectory(prefix="exnode-bench-watchers-") as tmp:
        config, node = bench_node(Path(tmp))
        sent = _record_sends(node.feed)
        tokens = [issue_dev_token(config.keys_dir, config.node.id, config.audience, subject="bench",
                                  department_code=code, roles=["consumer"]) for code in _departments(count)]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server, port, _ = asyncio.run_coroutine_threadsafe(build_server(node, "127.0.0.1:0"), loop).result(30)
        if not python_gc:
            from node.ops.startup import tune_gc

            tune_gc(config.server)  # as ``exnode serve`` does once it serves
        rss_before = _rss_mb()
        context = multiprocessing.get_context("spawn")
        ready, results = context.Event(), context.Queue()
        child = context.Process(target=_watchers, args=(f"127.0.0.1:{port}", tokens, count, COMMITS, ready, results,
                                                                 python_gc))
        started = time.monotonic()
        child.start()
        deadline = time.monotonic() + 300
        while not ready.wait(1.0):
            if not child.is_alive():
                raise RuntimeError(f"the watchers' process ended before all caught up (exit {child.exitcode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} watchers did not all catch up within 300 s")
        caught_up_s = time.monotonic() - started
        time.sleep(1.0)
        rss_after = _rss_mb()
        system = Principal.system("bench")
        pauses = _gc_pauses()
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
    last_per_commit: dict[str, float] = {}
    for code, at in received:
        if code in committed:
            last_per_commit[code] = max(last_per_commit.get(code, 0.0), at - committed[code])
    slowest = sorted(last_per_commit.values())
    node_side = sorted(at - committed[code] for code, at in sent if code in committed)
    figures = {
        "gc": "python" if python_gc else "serve",
        "watchers": count,
        "departments": len(tokens),
        "all_caught_up_s": caught_up_s,
        "deliveries": len(latencies),
        "deliveries_expected": count * COMMITS,
        "node_rss_mb_before_watchers": rss_before,
        "node_rss_mb_with_watchers": rss_after,
        "node_kb_per_watcher": (rss_after - rss_before) * 1024 / count,
        "commit_to_all_watchers_p50_ms": p50 * 1000,
        "commit_to_all_watchers_p99_ms": p99 * 1000,
        "commit_to_last_watcher_median_ms": slowest[len(slowest) // 2] * 1000 if slowest else float("nan"),
        "commit_to_last_watcher_max_ms": slowest[-1] * 1000 if slowest else float("nan"),
        "commit_to_node_send_p50_ms": node_side[len(node_side) // 2] * 1000 if node_side else float("nan"),
        "commit_to_node_send_p99_ms": node_side[max(0, int(len(node_side) * 0.99) - 1)] * 1000 if node_side
        else float("nan"),
        "node_gc_collections_during_commits": len(pauses),
        "node_gc_full_collections_during_commits": sum(1 for generation, _ in pauses if generation == 2),
        "node_gc_pause_max_ms": max((pause for _, pause in pauses), default=0.0) * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name, value in figures.items():
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)
    print(f"[bench watchers] {len(latencies)} of {count * COMMITS} deliveries", file=sys.stderr)
    return 0
