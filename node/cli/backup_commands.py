"""``exnode backup DIR`` and ``exnode restore DIR`` (node/ops/backup.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.cli.common import add_data, data_dir, print_json
from node.cli.output import progress_steps, progress_wanted
from node.config import load_config
from node.ops.backup import BackupError, Outcome, backup, restore, verify


def register(sub: argparse._SubParsersAction) -> None:
    make = sub.add_parser("backup", help="back up the node (database, keys, config) while it runs")
    make.add_argument("directory", type=Path, help="new or empty directory outside the data directory")
    add_data(make)
    make.add_argument("--with-kek", action="store_true",
                      help="also copy the key-encryption keys (by default left out: the backup stays unreadable "
                           "without them)")
    make.add_argument("--json", action="store_true", help="machine-readable output")
    make.set_defaults(handler=run_backup)

    back = sub.add_parser("restore", help="restore a backup into a data directory (checked before anything changes)")
    back.add_argument("directory", type=Path, help="a directory written by exnode backup")
    add_data(back)
    back.add_argument("--force", action="store_true",
                      help="replace a non-empty data directory or database (its contents are deleted)")
    back.add_argument("--keys", type=Path, default=None,
                      help="directory holding the key-encryption keys (kek-*.key) the backup leaves out")
    back.add_argument("--verify-only", action="store_true",
                      help="check the backup against its manifest and change nothing")
    back.add_argument("--json", action="store_true", help="machine-readable output")
    back.set_defaults(handler=run_restore)


def _fail(error: BackupError) -> int:
    print(f"exnode: {error}", file=sys.stderr)
    return 1


def _report(outcome: Outcome, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(outcome.as_json())
    else:
        print(f"{verb} node {outcome.node_id!r} ({outcome.database_kind}, schema {outcome.revision}): "
              f"{outcome.files} files, {outcome.bytes} bytes in {outcome.seconds:.2f} s -> {outcome.directory}")


def run_backup(args: argparse.Namespace) -> int:
    try:
        with progress_steps(enabled=progress_wanted(args.json)) as steps:
            outcome = backup(load_config(data_dir(args)), args.directory, with_kek=args.with_kek, steps=steps)
    except BackupError as error:
        return _fail(error)
    _report(outcome, "backed up", args.json)
    return 0


def run_restore(args: argparse.Namespace) -> int:
    try:
        if args.verify_only:
            with progress_steps(enabled=progress_wanted(args.json)) as steps:
                manifest = verify(args.directory, steps)
            if args.json:
                print_json({"ok": True, **{k: manifest[k] for k in ("node_id", "created_at", "database")}})
            else:
                print(f"backup OK: node {manifest['node_id']!r} of {manifest['created_at']}, "
                      f"{manifest['database']['kind']} schema {manifest['database']['revision']}, "
                      f"{len(manifest['files'])} files match the manifest")
            return 0
        with progress_steps(enabled=progress_wanted(args.json)) as steps:
            outcome = restore(args.directory, data_dir(args), force=args.force, keys_from=args.keys, steps=steps)
    except BackupError as error:
        return _fail(error)
    _report(outcome, "restored", args.json)
    if not args.json:
        print(f"start it with: exnode serve --data {outcome.directory}")
    return 0
