"""``exnode``: one entry point with subcommands (DESIGN.md §11).

Exit status: 0 success; 1 the operation failed or a check found a problem; 2 usage error. Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import grpc

from node.cli import bench, catalog_commands, lists_commands, node_commands, security_commands, tier_commands
from node.cli.common import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exnode", description="民政数据共享交换节点 — exchange node")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    node_commands.register(sub)
    catalog_commands.register(sub)
    lists_commands.register(sub)
    security_commands.register(sub)
    tier_commands.register(sub)
    bench.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.handler(args) or 0)
    except grpc.RpcError as error:
        code = error.code()
        print(f"exnode: {code.name if code else 'ERROR'}: {error.details()}", file=sys.stderr)
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
