"""``exnode report monthly --month YYYY-MM``: the node's signed monthly statistics (统计月报) as files."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc

from node.cli.common import UsageError, add_client, call_metadata, channel, print_json
from security.keys import UnusableKey, read_public_keys
from security.report import report_signing_input


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="statistics reported upward (统计月报)")
    commands = parser.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    monthly = commands.add_parser("monthly", help="a month's statistics: CSV (UTF-8 BOM) and XML, signed by the node")
    add_client(monthly)
    monthly.add_argument("--month", required=True, help="YYYY-MM (Beijing calendar month), e.g. 2026-11")
    monthly.add_argument("--out", type=Path, default=Path("."), help="directory for the files (default: here)")
    monthly.add_argument("--region", action="store_true",
                         help="sum this node's report with those its lower nodes sent up (the region's)")
    monthly.set_defaults(handler=run_monthly)
    send = commands.add_parser("send", help="send the month's report (with the lower nodes') to every upper node")
    add_client(send)
    send.add_argument("--month", required=True, help="YYYY-MM")
    send.set_defaults(handler=run_send)
    verify = commands.add_parser("verify", help="check a report's files against its .sig.json and the node's keys "
                                               "(offline)")
    verify.add_argument("signature", type=Path, help="the report's .sig.json (its files beside it)")
    verify.add_argument("--keys", type=Path, required=True, metavar="FILE",
                        help="the reporting node's published public-keys.json")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=run_verify)


def run_monthly(args: argparse.Namespace) -> int:
    stub = lists_pb2_grpc.ListsServiceStub(channel(args))
    response = stub.MonthlyReport(pb.MonthlyReportRequest(month=args.month, region=args.region),
                                  metadata=call_metadata(args))
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for item in response.files:
        path = args.out / Path(item.name).name  # the node names the files; never a path of its choosing
        path.write_bytes(item.content)
        written.append(path)
    signature = {"node_id": response.node_id, "month": response.month, "key_id": response.key_id,
                 "algorithm": response.algorithm, "signature": response.signature.hex(),
                 "files": {item.name: hashlib.sha256(item.content).hexdigest() for item in response.files}}
    sig_path = args.out / f"统计月报-{response.node_id}-{response.month}.sig.json"
    sig_path.write_text(json.dumps(signature, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    written.append(sig_path)
    if args.json:
        print_json({"files": [str(p) for p in written], **signature})
    else:
        for path in written:
            print(f"wrote {path}")
    print(f"signed by {response.node_id} with key {response.key_id}", file=sys.stderr)
    return 0


def run_send(args: argparse.Namespace) -> int:
    stub = lists_pb2_grpc.ListsServiceStub(channel(args))
    response = stub.SendMonthlyReport(pb.MonthlyReportRequest(month=args.month), metadata=call_metadata(args))
    if args.json:
        print_json({"queues": list(response.queues), "resources": response.resources,
                    "departments": response.departments, "includes": list(response.includes)})
    else:
        print(f"sent the {args.month} report ({response.resources} resources, {response.departments} departments"
              + (f", with {', '.join(response.includes)}" if response.includes else "") + ") to "
              + ", ".join(response.queues))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Exit 0 when every file is there, unchanged, and the signature verifies; 1 naming the problem."""
    try:
        keys = read_public_keys(args.keys)
    except UnusableKey as error:
        raise UsageError(f"--keys {args.keys}: {error}") from None
    try:
        document = json.loads(args.signature.read_text(encoding="utf-8"))
        node_id, month, kid = document["node_id"], document["month"], document["key_id"]
        signature, names = bytes.fromhex(document["signature"]), list(document["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{args.signature}: not a report signature file: {error}") from None
    problems = []
    files: dict[str, bytes] = {}
    for name in names:
        path = args.signature.parent / Path(name).name
        try:
            files[name] = path.read_bytes()
        except OSError as error:
            problems.append(f"{path}: {error.strerror}")
    key = keys.get(kid)
    if key is None:
        problems.append(f"key {kid} is not among the keys of {args.keys}")
    elif not problems and not key.verify(report_signing_input(node_id, month, files), signature):
        problems.append("the signature does not verify: a file was changed, or it is not this node's report")
    if args.json:
        print_json({"node_id": node_id, "month": month, "ok": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            print(f"exnode: {problem}", file=sys.stderr)
    else:
        print(f"ok: the {month} report of node {node_id} ({len(files)} files), signed with key {kid}")
    return 1 if problems else 0
