"""``exnode bench rpc``: catalog RPCs per second with and without the audit trail, in one run.

Why this shape: the audit trail's cost is what matters, so both runs serve the same sample catalog with
the same authentication, and differ only in the audit writer (the real group-commit writer, or one that
acknowledges at once). The server runs in this process; the load comes from a separate process (its own
GIL), many concurrent calls on one channel: GetResource and a Chinese-text ListResources, alternating.
Both servers run at once and the load alternates between them in rounds (ABBA…), so the overhead is
read from neighbouring slices of time on a shared machine, with its range over the rounds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
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

    def submit_async(self, record: AuditRecord) -> asyncio.Future[int]:
        self.count += 1
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(self.count)
        return future


def _client(addresses: list[str], tokens: list[str], codes: list[str], phases: list[tuple[int, float]], concurrency: int,
            results: Any) -> None:
    """The load generator (a child process): one phase after the other, each ``(server index, seconds)``;
    per phase the calls made and their latencies."""
    import grpc
    from exnode.v1 import catalog_pb2 as pb
    from exnode.v1 import catalog_pb2_grpc

    async def phase(address: str, token: str, duration: float) -> list[float]:
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
        return latencies

    async def run() -> list[tuple[int, list[float]]]:
        return [(server, await phase(addresses[server], tokens[server], duration)) for server, duration in phases]

    results.put(asyncio.run(run()))


def bench_node(data: Path, database_url: str = "", audit_window_ms: float | None = None) -> tuple[Any, Any]:
    """A development node in ``data`` (keys, the dev issuer, migrations, the sample catalog): the
    config and the built node, for benchmarks that serve it in their own process. ``audit_window_ms``:
    the audit writer's group-commit window (default: the configuration's)."""
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
    if audit_window_ms is not None:
        config = replace(config, audit=replace(config.audit, batch_window_ms=audit_window_ms))
    migrate(config.database_url)
    node = bootstrap.build(config, apply_migrations=False)
    load_sample(node)
    return config, node


def _serve(audited: bool, data: Path, database_url: str, loop: asyncio.AbstractEventLoop,
           audit_window_ms: float | None = None) -> dict[str, Any]:
    from node.grpc.server import build_server
    from security.identity import Principal, issue_dev_token

    config, node = bench_node(data, database_url, audit_window_ms)
    codes = [r.code for r in node.catalog.export(Principal.system("bench"), None)]
    token = issue_dev_token(config.keys_dir, config.node.id, config.audience, subject="bench",
                            department_code="11100000MB01284764", roles=["consumer"])
    writer = None if audited else _NoAudit()
    server, port, _ = asyncio.run_coroutine_threadsafe(
        build_server(node, "127.0.0.1:0", audit_writer=writer), loop).result(30)  # type: ignore[arg-type]
    return {"node": node, "server": server, "address": f"127.0.0.1:{port}", "codes": codes, "token": token}


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies) or [0.0]
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000


def _run(duration: float, concurrency: int, database_url: str, rounds: int, python_gc: bool,
         audit_window_ms: float | None = None) -> dict[str, Any]:
    """Both servers up at once (one without the audit trail, one with), the load alternating between them
    ``rounds`` times (ABBA…), so a change in the shared machine's load falls on both alike."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-rpc-"))
        baseline_url = ""
        if database_url.startswith("postgres"):  # the two nodes cannot share one database: the baseline
            from node.bench.catalog import _postgres_database  # gets a throw-away one on the same server

            baseline_url = stack.enter_context(_postgres_database())
        elif database_url:
            raise ValueError("bench rpc: --database-url names a PostgreSQL database (SQLite is the default)")
        (Path(tmp) / "plain").mkdir()
        (Path(tmp) / "audited").mkdir()
        plain = _serve(False, Path(tmp) / "plain", baseline_url, loop)
        audited = _serve(True, Path(tmp) / "audited", database_url, loop, audit_window_ms)
        if not python_gc:
            from node.ops.startup import tune_gc

            tune_gc(audited["node"].config.server)  # as ``exnode serve`` does once it serves
        try:
            slice_s = duration / rounds
            phases = []
            for index in range(rounds):
                order = (0, 1) if index % 2 == 0 else (1, 0)
                phases.extend((server, slice_s) for server in order)
            entries_before, batches_before = audited["node"].audit_writer.entries, audited["node"].audit_writer.batches
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            child = context.Process(target=_client, args=(
                [plain["address"], audited["address"]], [plain["token"], audited["token"]], audited["codes"], phases, concurrency,
                results))
            child.start()
            done = results.get(timeout=duration * 2 + 180)
            child.join(30)
            writer = audited["node"].audit_writer
            entries, batches = writer.entries - entries_before, writer.batches - batches_before
            verified = audited["node"].audit.verify().ok
        finally:
            for served in (plain, audited):
                asyncio.run_coroutine_threadsafe(served["server"].stop(1), loop).result(30)
                served["node"].close()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
    per_round: list[float] = []
    rates: dict[int, list[float]] = {0: [], 1: []}
    latencies: dict[int, list[float]] = {0: [], 1: []}
    for server, calls in done:
        rates[server].append(len(calls) / slice_s)
        latencies[server].extend(calls)
    for without, with_ in zip(rates[0], rates[1], strict=True):
        per_round.append(100 * (1 - with_ / without))
    return {"rates": rates, "latencies": latencies, "per_round": per_round, "entries": entries,
            "batches": batches, "verified": verified}


def main(duration: float = 10.0, concurrency: int = 32, database_url: str = "", rounds: int = 4,
         python_gc: bool = False, audit_window_ms: float | None = None) -> int:
    """Print name=value figures; the audit overhead is the ratio of the two servers' calls per second, over
    all rounds, with its range over the rounds (the machine is shared: one round is not a measurement)."""
    if rounds < 1 or duration <= 0:
        raise ValueError("rounds must be at least 1 and duration positive")
    if audit_window_ms is not None and not 0 <= audit_window_ms <= 100:
        raise ValueError("--audit-window-ms must be from 0 to 100")
    print(f"bench=rpc duration_s={duration} concurrency={concurrency} rounds={rounds} "
          f"database={'sqlite' if not database_url else database_url.split('://')[0]} "
          f"gc={'python' if python_gc else 'serve'} "
          f"audit_window_ms={'config' if audit_window_ms is None else audit_window_ms}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    run = _run(duration, concurrency, database_url, rounds, python_gc, audit_window_ms)
    without = sum(run["rates"][0]) / rounds
    with_audit = sum(run["rates"][1]) / rounds
    p50_without, p99_without = _percentiles(run["latencies"][0])
    p50_with, p99_with = _percentiles(run["latencies"][1])
    per_round = sorted(run["per_round"])
    figures = {
        "catalog_rpc_per_s_without_audit": without,
        "catalog_rpc_per_s_with_audit": with_audit,
        "with_audit_vs_without_ratio": with_audit / without,
        "audit_overhead_pct": 100 * (1 - with_audit / without),
        "audit_overhead_pct_min": per_round[0],
        "audit_overhead_pct_median": per_round[len(per_round) // 2],
        "audit_overhead_pct_max": per_round[-1],
        "rounds": rounds,
        "p50_ms_without_audit": p50_without,
        "p99_ms_without_audit": p99_without,
        "p50_ms_with_audit": p50_with,
        "p99_ms_with_audit": p99_with,
        "audit_entries_written": run["entries"],
        "audit_entries_per_commit": run["entries"] / max(1, run["batches"]),
        "audit_chain_verified": float(run["verified"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    for name, value in figures.items():
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}")
    return 0
