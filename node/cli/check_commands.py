"""``exnode check file|show|watch|export`` (家庭经济状况核对) and ``exnode responder`` (the reference responder
a bank's or department's integrator starts from)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
from pathlib import Path

from exnode.v1 import checks_pb2 as pb
from exnode.v1 import checks_pb2_grpc

from node.cli.common import UsageError, add_client, call_metadata, channel, print_json
from node.cli.output import display_width, pad


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="household economic checks (家庭经济状况核对)")
    jobs = check.add_subparsers(dest="check_command", required=True, metavar="COMMAND")
    file = jobs.add_parser("file", help="file a check: one signed request per target")
    add_client(file)
    file.add_argument("--member", action="append", default=[], metavar="ID_NUMBER=NAME", help="a member (repeat)")
    file.add_argument("--target", action="append", default=[], metavar="NAME=CATEGORY",
                      help="a target: its peer id and category, e.g. bank-icbc=银行 (repeat)")
    file.add_argument("--purpose", required=True)
    file.add_argument("--authorisation", default="", help="授权书编号: the applicant's written authorisation (required)")
    file.add_argument("--deadline-minutes", type=float, default=60.0, help="minutes from now (default 60)")
    file.set_defaults(handler=run_file)
    for name, helptext, handler in (("show", "the check and each target's state", run_show),
                                    ("watch", "follow the check until it completes", run_watch)):
        command = jobs.add_parser(name, help=helptext)
        add_client(command)
        command.add_argument("id", metavar="ID")
        command.set_defaults(handler=handler)
    export = jobs.add_parser("export", help="the combined report (CSV, UTF-8 with BOM) with every answer's signature")
    add_client(export)
    export.add_argument("id", metavar="ID")
    export.add_argument("--out", type=Path, default=None, help="the file (default: the name the node gives)")
    export.add_argument("--format", choices=("csv", "xml"), default="csv",
                        help="csv (UTF-8 with BOM, default) or xml (node/files/schemas/check-report.xsd)")
    export.set_defaults(handler=run_export)

    responder = sub.add_parser("responder", help="the reference responder of household checks (a bank's starting "
                                                 "point): answers from a small dataset")
    responder.add_argument("--dataset", type=Path, required=True, metavar="FILE",
                           help='JSON: {"members": {"<公民身份号码>": {"item": value, …}}, "refuse": ""}')
    responder.add_argument("--name", required=True, help="its peer id: it consumes exnode.<name>.rpc")
    responder.add_argument("--keys", type=Path, default=Path("responder-keys"), metavar="DIR",
                           help="its key and public-keys.json (for the node's peers directory); default ./responder-keys")
    responder.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="the broker URL")
    responder.set_defaults(handler=run_responder)


def _pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    out = []
    for text in values:
        left, sep, right = text.partition("=")
        if not sep or not left.strip():
            raise UsageError(f"{option} {text!r}: expected A=B")
        out.append((left.strip(), right.strip()))
    return out


def _show(check: pb.HouseholdCheck, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"id": check.id, "complete": check.complete, "authorisation": check.authorisation,
                          "targets": [{"name": t.name, "category": t.category, "state": t.state, "reason": t.reason,
                                       "findings": json.loads(t.findings or b"[]"), "key_id": t.key_id}
                                      for t in check.targets]}, ensure_ascii=False), flush=True)
        return
    print(f"{check.id} {'COMPLETE' if check.complete else 'OPEN'} (授权书 {check.authorisation}, "
          f"{len(check.members)} members)", flush=True)
    # columns by display width (a category such as 住建/房产 takes two cells per character)
    name_width = max((display_width(t.name) for t in check.targets), default=0)
    category_width = max((display_width(t.category) for t in check.targets), default=0)
    state_width = max((len(t.state) for t in check.targets), default=0)
    for t in check.targets:
        findings = json.loads(t.findings or b"[]")
        detail = f" — {t.reason}" if t.reason else ""
        items = "; ".join(f"{f['id_number'][:6]}…: {json.dumps(f['items'], ensure_ascii=False)}" for f in findings)
        line = (f"  {pad(t.name, name_width)}  {pad(t.category, category_width)}  {pad(t.state, state_width)}"
                f"{detail}" + (f"  {items}" if items else ""))
        print(line.rstrip(), flush=True)


def _stub(args: argparse.Namespace) -> checks_pb2_grpc.CheckServiceStub:
    return checks_pb2_grpc.CheckServiceStub(channel(args))


def run_file(args: argparse.Namespace) -> int:
    request = pb.FileCheckRequest(
        members=[pb.HouseholdMember(id_number=i, name=n) for i, n in _pairs(args.member, "--member")],
        targets=[pb.CheckTargetRef(name=n, category=c) for n, c in _pairs(args.target, "--target")],
        purpose=args.purpose, authorisation=args.authorisation)
    request.deadline.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=args.deadline_minutes))
                                  .replace(tzinfo=None))
    _show(_stub(args).FileCheck(request, metadata=call_metadata(args)), args.json)
    return 0


def run_show(args: argparse.Namespace) -> int:
    _show(_stub(args).GetCheck(pb.GetCheckRequest(id=args.id), metadata=call_metadata(args)), args.json)
    return 0


def run_watch(args: argparse.Namespace) -> int:
    for check in _stub(args).WatchCheck(pb.GetCheckRequest(id=args.id), metadata=call_metadata(args)):
        _show(check, args.json)
    return 0


def run_export(args: argparse.Namespace) -> int:
    response = _stub(args).ExportCheck(pb.ExportCheckRequest(id=args.id, format=args.format),
                                       metadata=call_metadata(args))
    path = args.out or Path(response.filename)
    path.write_bytes(response.content)
    print_json({"file": str(path), "bytes": len(response.content)}) if args.json else print(f"wrote {path}")
    return 0


def run_responder(args: argparse.Namespace) -> int:
    from adapters.responder import Responder

    try:
        dataset = json.loads(args.dataset.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"--dataset {args.dataset}: {error}") from None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("members", {}), dict):
        raise UsageError(f"--dataset {args.dataset}: expected an object with \"members\"")
    responder = Responder(args.amqp, args.name, dataset, args.keys)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: responder.stop())
    print(f"exnode responder: {args.name} answering exnode.{args.name}.rpc; its public keys: "
          f"{args.keys / 'public-keys.json'} (put it in the node's peers directory)", file=sys.stderr, flush=True)
    responder.run()
    return 0
