"""``exnode bench scale``: the same measurements at growing sizes, so the growth per 10x is visible.

Why: "costs grow no faster than the data" is a claim about a curve, not a point. Each size runs in a
process of its own (so ``peak_rss`` is that size's), on a fresh SQLite database by default:

- catalog search: ``bench catalog --count N`` → ``catalog_search_p99_ms_<size>`` and its peak RSS;
- pull: ``bench pull --count N`` → ``pull_s_<size>``, ``pull_peak_rss_mb_<size>`` (the larger of node and
  client), and ``pull_s_growth_per_10x`` between consecutive sizes;
- audit query: N entries written straight into ``audit_entries`` (rows of the real table, hashes not
  chained: the query does not read them), then newest-first pages filtered by subject, department,
  action, target, result and a time range → ``audit_query_p99_ms_<size>``.

Sizes are given per part (``--catalog-sizes 10000,100000``); the defaults are the small end, which runs
in minutes here; the issue's full ladder (10^6 resources, 10^7 records and entries) takes hours.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from node.bench import progress
from node.bench.catalog import percentile
from node.storage.audit_repository import AuditFilter, AuditRepository
from node.storage.database import make_engine, migrate
from node.storage.tables import audit_entries

DEFAULT_CATALOG = (10_000, 100_000)
DEFAULT_PULL = (100_000, 1_000_000)
DEFAULT_AUDIT = (100_000, 1_000_000)
AUDIT_QUERIES = 300
AUDIT_BATCH = 100_000


def _label(size: int) -> str:
    exponent = math.log10(size)
    return f"1e{round(exponent)}" if exponent == round(exponent) else str(size)


def _emit(name: str, value: float | int) -> None:
    print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def _progress(message: str) -> None:
    print(f"[bench scale] {message}", file=sys.stderr, flush=True)


def _run_bench(arguments: list[str]) -> dict[str, str]:
    """Run ``exnode bench …`` in a child process of its own (its peak RSS is its own); its figures."""
    done = subprocess.run([sys.executable, "-m", "node.cli", "bench", *arguments], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench {' '.join(arguments)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def catalog(sizes: tuple[int, ...], directory: Path) -> None:
    for size in sizes:
        _progress(f"catalog search at {size} resources")
        url = f"sqlite:///{directory / f'catalog-{size}.db'}"
        figures = _run_bench(["catalog", "--count", str(size), "--database-url", url])
        label = _label(size)
        _emit(f"catalog_search_p99_ms_{label}", float(figures["sqlite_search_p99_ms"]))
        _emit(f"catalog_search_vs_raw_index_p99_ratio_{label}",
              float(figures["sqlite_search_vs_raw_index_p99_ratio"]))
        _emit(f"catalog_import_resources_per_s_{label}", float(figures["sqlite_catalog_import_resources_per_s"]))
        _emit(f"catalog_peak_rss_mb_{label}", float(figures["peak_rss_mb"]))


def pull(sizes: tuple[int, ...], directory: Path) -> None:
    previous: tuple[int, float] | None = None
    for size in sizes:
        _progress(f"pull of {size} records")
        url = f"sqlite:///{directory / f'pull-{size}.db'}"
        figures = _run_bench(["pull", "--count", str(size), "--database-url", url])
        seconds = float(figures["sqlite_pull_seconds"])
        label = _label(size)
        _emit(f"pull_s_{label}", seconds)
        _emit(f"pull_peak_rss_mb_{label}", max(float(figures["sqlite_client_peak_rss_mb"]),
                                               float(figures["sqlite_node_peak_rss_mb"])))
        if previous is not None:
            factor = (seconds / previous[1]) ** (1 / math.log10(size / previous[0]))
            _emit(f"pull_s_growth_per_10x_{_label(previous[0])}_{label}", factor)
        previous = (size, seconds)


AUDIT_INDEXES = ("at", *(f"{column}_sequence" for column in
                          ("subject", "department_code", "action", "target", "result")))
"""The trail's secondary indexes (migrations 0002 and 0012): dropped for the fill, rebuilt once after it."""


def _fill_audit(url: str, size: int, rng: random.Random) -> tuple[list[str], list[str], dt.datetime, dt.datetime]:
    """``size`` rows straight into ``audit_entries`` (not through RPCs): plain executemany in chunks of
    their own transactions, the secondary indexes rebuilt once at the end (building them row by row made a
    10^7 fill take hours), then ANALYZE so the planner knows the filters' selectivity as a real node's
    statistics would."""
    engine = make_engine(url)
    subjects = [f"user-{i}" for i in range(2_000)]
    departments = [f"111000000000{i:05d}X"[:18] for i in range(300)]
    actions = ["catalog.read", "catalog.update", "records.query", "records.pull", "lists.read", "audit.query"]
    results = ["OK"] * 18 + ["PERMISSION_DENIED", "INVALID_ARGUMENT"]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    definitions = {index.name: index for index in audit_entries.indexes}
    names = [f"ix_audit_entries_{suffix}" for suffix in AUDIT_INDEXES if f"ix_audit_entries_{suffix}" in definitions]
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # a throw-away bench file; on the driver's connection, before SQLAlchemy begins a transaction
            connection.connection.dbapi_connection.execute("PRAGMA synchronous=OFF")  # type: ignore[union-attr]
        with connection.begin():
            for name in names:
                connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        for first in range(0, size, AUDIT_BATCH):
            rows = []
            for sequence in range(first + 1, min(size, first + AUDIT_BATCH) + 1):
                rows.append({
                    "sequence": sequence, "at": start + dt.timedelta(seconds=sequence * 3),
                    "request_id": f"r{sequence}", "subject": rng.choice(subjects),
                    "department_code": rng.choice(departments), "roles": "consumer",
                    "action": rng.choice(actions), "target": f"resource:{rng.randrange(100_000):06d}",
                    "result": rng.choice(results), "peer": "127.0.0.1", "detail": "", "previous_hash": "0" * 64,
                    "entry_hash": "0" * 64})
            with connection.begin():
                connection.execute(audit_entries.insert(), rows)
            progress.step(f"bench scale: {size} audit entries", min(size, first + AUDIT_BATCH), size)
        with connection.begin():
            for name in names:
                definitions[name].create(connection)
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return subjects, departments, start, start + dt.timedelta(seconds=size * 3)


def audit(sizes: tuple[int, ...], directory: Path) -> None:
    for size in sizes:
        _progress(f"audit query over {size} entries")
        latencies = _audit_latencies(f"sqlite:///{directory / f'audit-{size}.db'}", size)
        _emit(f"audit_query_p99_ms_{_label(size)}", percentile(latencies, 0.99) * 1000)
        _emit(f"audit_query_p50_ms_{_label(size)}", percentile(latencies, 0.50) * 1000)


def _audit_latencies(url: str, size: int) -> list[float]:
    migrate(url)
    rng = random.Random(size)
    subjects, departments, start, end = _fill_audit(url, size, rng)
    span = (end - start).total_seconds()

    def hour() -> AuditFilter:
        at = start + dt.timedelta(seconds=rng.random() * span)
        return AuditFilter(since=at, until=at + dt.timedelta(hours=1))

    kinds = [
        lambda: AuditFilter(subject=rng.choice(subjects)),
        lambda: AuditFilter(department_code=rng.choice(departments)),
        lambda: AuditFilter(action="audit.query"),
        lambda: AuditFilter(target=f"resource:{rng.randrange(100_000):06d}"),
        lambda: AuditFilter(result="PERMISSION_DENIED"),
        hour,
    ]
    latencies: list[float] = []
    engine = make_engine(url)
    with engine.connect() as connection:
        repository = AuditRepository(connection)
        for i in range(AUDIT_QUERIES):
            flt = kinds[i % len(kinds)]()
            began = time.perf_counter()
            repository.query(flt, before_sequence=0, limit=50)
            latencies.append(time.perf_counter() - began)
    engine.dispose()
    return latencies


def main(catalog_sizes: tuple[int, ...] = DEFAULT_CATALOG, pull_sizes: tuple[int, ...] = DEFAULT_PULL,
         audit_sizes: tuple[int, ...] = DEFAULT_AUDIT) -> int:
    with tempfile.TemporaryDirectory(prefix="exnode-bench-scale-") as name:
        directory = Path(name)
        catalog(catalog_sizes, directory)
        audit(audit_sizes, directory)
        pull(pull_sizes, directory)
    _emit("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return 0
