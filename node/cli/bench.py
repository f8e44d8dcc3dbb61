"""``exnode bench …``: benchmarks run on demand; they print name=value lines."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from node.cli.common import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmarks (print name=value lines)")
    commands = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    catalog = commands.add_parser("catalog", help="import N generated resources, then time typical searches")
    catalog.add_argument("--count", type=int, default=100_000)
    catalog.add_argument("--database-url", action="append", default=None,
                         help="database to measure (repeatable; default: a temporary SQLite and the local PostgreSQL)")
    catalog.add_argument("--import-only", action="store_true",
                         help="measure the import alone (no raw index, searches or gets)")
    catalog.set_defaults(handler=_with_bars(run_catalog))
    rpc = commands.add_parser("rpc", help="catalog RPCs per second with and without the audit trail")
    rpc.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    rpc.add_argument("--concurrency", type=int, default=32, help="concurrent calls (default 32)")
    rpc.add_argument("--database-url", default="", help="default: a temporary SQLite database")
    rpc.add_argument("--rounds", type=int, default=4, help="alternations between the two servers (default 4)")
    rpc.add_argument("--python-gc", action="store_true",
                     help="leave CPython's collector at its defaults instead of server.gc_* as exnode serve sets it "
                          "(to compare)")
    rpc.add_argument("--audit-window-ms", type=float, default=None,
                     help="the audit writer's group-commit window (default: audit.batch_window_ms, 5; 0 to compare)")
    rpc.set_defaults(handler=_with_bars(run_rpc))
    relay = commands.add_parser("relay", help="end-to-end records per second through the relay vs raw pika, "
                                              "latency at a steady rate")
    relay.add_argument("--records", type=int, default=100_000, help="records in the throughput run (default 100000)")
    relay.add_argument("--batch", type=int, default=500, help="records per batch (default 500)")
    relay.add_argument("--rate", type=int, default=1000, help="records per second in the latency run (default 1000)")
    relay.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency run (default 20)")
    relay.add_argument("--database-url", default="", help="default: a temporary SQLite database")
    relay.add_argument("--dispatcher", choices=("process", "thread"), default="process",
                       help="where the node runs its dispatcher (exchange.dispatch_process; default process)")
    relay.set_defaults(handler=_with_bars(run_relay))
    pull = commands.add_parser("pull", help="a verified nightly pull of N generated records through gRPC")
    pull.add_argument("--count", type=int, default=1_000_000, help="records to generate and pull (default 1000000)")
    pull.add_argument("--database-url", action="append", default=None,
                      help="empty database to measure (repeatable; default: a temporary SQLite and PostgreSQL)")
    pull.add_argument("--ingest", action="store_true",
                      help="records arrive through the pipeline (signed batches over IngestStream), then the first "
                           "pull after it, at each of --counts (default: records inserted with their positions)")
    pull.add_argument("--counts", type=_counts, default=None,
                      help="with --ingest: record counts, comma-separated (default 100000,1000000)")
    pull.set_defaults(handler=_with_bars(run_pull))
    fanout = commands.add_parser("fanout", help="catalog events per second through the fanout publisher after "
                                                "an import of N published resources, vs raw pika")
    fanout.add_argument("--count", type=int, default=100_000, help="resources imported and published (default 100000)")
    fanout.set_defaults(handler=_with_bars(run_fanout))
    watchers = commands.add_parser("watchers", help="N concurrent WatchCatalog streams: memory per watcher, "
                                                    "commit-to-every-watcher latency")
    watchers.add_argument("--count", type=int, default=1_000, help="concurrent streams (default 1000)")
    watchers.add_argument("--python-gc", action="store_true",
                          help="leave CPython's collector at its defaults instead of server.gc_* as exnode serve sets it "
                               "(to compare)")
    watchers.set_defaults(handler=_with_bars(run_watchers))
    scale = commands.add_parser("scale", help="catalog search, pull and audit query at growing sizes (growth per 10x)")
    scale.add_argument("--catalog-sizes", type=_sizes, default=None, help="resources, comma-separated "
                       "(default 10000,100000; the issue's ladder adds 1000000); empty skips")
    scale.add_argument("--pull-sizes", type=_sizes, default=None,
                       help="records, comma-separated (default 100000,1000000; then 10000000); empty skips")
    scale.add_argument("--audit-sizes", type=_sizes, default=None,
                       help="audit entries, comma-separated (default 100000,1000000; then 10000000); empty skips")
    scale.set_defaults(handler=_with_bars(run_scale))
    console = commands.add_parser("console", help="the console's audit and catalog search pages: p50/p99 from 8 "
                                                  "concurrent signed-in sessions")
    console.add_argument("--audit-entries", type=int, default=1_000_000, help="default 1000000")
    console.add_argument("--resources", type=int, default=100_000, help="default 100000")
    console.add_argument("--requests", type=int, default=60, help="page loads per session and page kind (default 60)")
    console.add_argument("--database-url", default="", help="an empty database (default: a temporary SQLite)")
    console.add_argument("--keep", type=Path, default=None, metavar="DIR",
                         help="keep the populated node in DIR and reuse it next time (populating takes minutes)")
    console.set_defaults(handler=run_console)
    verify = commands.add_parser("verify", help="VerifyClaim and QueryRecords from 32 callers against N keyed "
                                                "records, vs a raw grpc.aio unary echo server")
    verify.add_argument("--count", type=int, default=1_000_000, help="keyed records stored (default 1000000)")
    verify.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (default 10)")
    verify.add_argument("--concurrency", type=int, default=32, help="concurrent callers (default 32)")
    verify.add_argument("--database-url", action="append", default=None,
                        help="empty database to measure (repeatable; default: a temporary SQLite and PostgreSQL)")
    verify.set_defaults(handler=_with_bars(run_verify))


def _with_bars(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The benchmark with bars for its preparation on a terminal (``node.bench.progress``)."""
    def run(args: argparse.Namespace) -> int:
        from node.bench import progress as bench_progress
        from node.cli.output import progress_steps, progress_wanted

        with progress_steps(enabled=progress_wanted()) as show:
            bench_progress.install(show)
            try:
                return handler(args)
            finally:
                bench_progress.install(None)
    return run


def run_catalog(args: argparse.Namespace) -> int:
    from node.bench.catalog import main as bench_main

    return bench_main(count=args.count, urls=args.database_url, import_only=args.import_only)


def run_rpc(args: argparse.Namespace) -> int:
    from node.bench.rpc import main as bench_main

    if args.rounds < 1:
        raise UsageError("bench rpc: --rounds must be at least 1")
    if args.audit_window_ms is not None and not 0 <= args.audit_window_ms <= 100:
        raise UsageError(f"bench rpc: --audit-window-ms = {args.audit_window_ms}; from 0 to 100")
    return bench_main(duration=args.duration, concurrency=args.concurrency, database_url=args.database_url,
                      rounds=args.rounds, python_gc=args.python_gc, audit_window_ms=args.audit_window_ms)


def run_relay(args: argparse.Namespace) -> int:
    from node.bench.relay import main as bench_main

    return bench_main(records=args.records, batch=args.batch, rate=args.rate, latency_seconds=args.latency_seconds,
                      database_url=args.database_url, dispatch_process=args.dispatcher == "process")


def run_console(args: argparse.Namespace) -> int:
    from node.bench.console import main as bench_main
    from node.cli.output import progress, progress_wanted

    return bench_main(audit_entries=args.audit_entries, resources=args.resources, requests=args.requests,
                      database_url=args.database_url, keep=args.keep,
                      bar=(lambda text, total: progress(text, total, unit="rows")) if progress_wanted() else None)


def _counts(value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of record counts") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: every count must be at least 1")
    return counts


def run_pull(args: argparse.Namespace) -> int:
    from node.bench.pull import main as bench_main
    from node.bench.pull import main_ingest

    if args.ingest:
        if args.database_url and len(set(args.counts or [0, 1])) > 1:
            raise UsageError("bench pull --ingest: a --database-url names one empty database; give one count "
                             "with it (--counts N)")
        return main_ingest(counts=args.counts, urls=args.database_url)
    if args.counts is not None:
        raise UsageError("bench pull: --counts goes with --ingest (without it, --count N)")
    return bench_main(count=args.count, urls=args.database_url)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes are whole numbers separated by commas") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return sizes


def run_scale(args: argparse.Namespace) -> int:
    from node.bench import scale as bench_scale

    return bench_scale.main(
        catalog_sizes=bench_scale.DEFAULT_CATALOG if args.catalog_sizes is None else args.catalog_sizes,
        pull_sizes=bench_scale.DEFAULT_PULL if args.pull_sizes is None else args.pull_sizes,
        audit_sizes=bench_scale.DEFAULT_AUDIT if args.audit_sizes is None else args.audit_sizes)


def run_fanout(args: argparse.Namespace) -> int:
    from node.bench.fanout import main as bench_main

    if args.count < 1:
        raise UsageError("bench fanout: --count must be at least 1")
    return bench_main(count=args.count)


def run_watchers(args: argparse.Namespace) -> int:
    from node.bench.watchers import main as bench_main

    if args.count < 1:
        raise UsageError("bench watchers: --count must be at least 1")
    return bench_main(count=args.count, python_gc=args.python_gc)


def run_verify(args: argparse.Namespace) -> int:
    from node.bench.verify import main as bench_main

    return bench_main(count=args.count, duration=args.duration, concurrency=args.concurrency, urls=args.database_url)
