"""``exnode tsa stamp`` and ``exnode tsa verify``: trusted timestamps (RFC 3161) of the node's roots."""

from __future__ import annotations

import argparse
import sys

from node import bootstrap
from node.cli.common import UsageError, add_data, data_dir, print_json
from node.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    tsa = sub.add_parser("tsa", help="trusted timestamps (RFC 3161) of batch roots")
    commands = tsa.add_subparsers(dest="tsa_command", required=True, metavar="ACTION")
    stamp = commands.add_parser("stamp", help="stamp the roots that wait now (the node's worker does so every "
                                              "tsa.interval_s)")
    add_data(stamp)
    stamp.set_defaults(handler=run_stamp)
    verify = commands.add_parser("verify", help="check every stored token offline: signature, the TSA's "
                                                "certificate chain, message imprint, the batches it covers")
    add_data(verify)
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=run_verify)


def _node(args: argparse.Namespace) -> bootstrap.Node:
    config = load_config(data_dir(args))
    if not config.tsa.url:
        raise UsageError("tsa.url is not configured: this node takes no timestamps")
    return bootstrap.build(config, start_audit=False)


def run_stamp(args: argparse.Namespace) -> int:
    node = _node(args)
    try:
        assert node.timestamps is not None
        stamped = node.timestamps.stamp_once()
        backlog = node.timestamps.backlog()
        error = node.timestamps.last_error
    finally:
        node.close()
    print(f"{stamped} roots stamped; {backlog.roots} wait" + (f" (oldest {backlog.oldest_age_s:.0f} s)"
                                                              if backlog.roots else ""))
    if error:
        print(f"exnode: {error}", file=sys.stderr)
        return 1
    return 0


def run_verify(args: argparse.Namespace) -> int:
    node = _node(args)
    try:
        assert node.timestamps is not None
        count, problems = node.timestamps.verify()
    finally:
        node.close()
    if args.json:
        print_json({"ok": not problems, "tokens": count, "problems": problems})
    else:
        for problem in problems:
            print(f"exnode: {problem}", file=sys.stderr)
        if not problems:
            print(f"tsa verify: OK, {count} tokens")
    return 1 if problems else 0
