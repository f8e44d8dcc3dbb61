"""``exnode``: one entry point with subcommands (DESIGN.md §11).

Exit status: 0 success; 1 the operation failed or a check found a problem; 2 usage error. Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

import grpc

from node.cli import (
    backup_commands,
    bench,
    catalog_commands,
    check_commands,
    health_commands,
    lists_commands,
    node_commands,
    pull_commands,
    query_commands,
    records_commands,
    report_commands,
    security_commands,
    tier_commands,
    tsa_commands,
)
from node.cli.common import UsageError
from node.ops import logs

MAX_ERROR_CHARS = 800


def version() -> str:
    """The installed distribution's version (pyproject.toml), so a bug report names what ran."""
    try:
        return metadata.version("exnode")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exnode", description="民政数据共享交换节点 — exchange node")
    parser.add_argument("--version", action="version", version=f"exnode {version()}")
    parser.add_argument("--log-level", default=None,
                        help="logging level (default WARNING; INFO for serve)")
    parser.add_argument("--log-format", default=None, choices=logs.FORMATS,
                        help="log lines on stderr (default text; serve: server.log_format, json)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    node_commands.register(sub)
    backup_commands.register(sub)
    health_commands.register(sub)
    catalog_commands.register(sub)
    lists_commands.register(sub)
    security_commands.register(sub)
    pull_commands.register(sub)
    report_commands.register(sub)
    query_commands.register(sub, records_commands.register(sub))
    check_commands.register(sub)
    tier_commands.register(sub)
    tsa_commands.register(sub)
    bench.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        logs.configure(args.log_level or "WARNING", args.log_format or "text")
    except ValueError as error:
        print(f"exnode: --log-level: {error}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except grpc.RpcError as error:
        code = error.code()
        details = error.details() or ""
        if len(details) > MAX_ERROR_CHARS:  # e.g. one problem per record of a 500-record batch
            details = f"{details[:MAX_ERROR_CHARS]}… ({len(details)} characters; the first problems shown)"
        print(f"exnode: {code.name if code else 'ERROR'}: {details}", file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"exnode: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as error:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.exception("failed")
        print(f"exnode: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
