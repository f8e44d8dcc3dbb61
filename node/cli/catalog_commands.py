"""``exnode catalog list|show|create|edit|import|export|publish|retire|watch`` against a running node."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import grpc
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from catalog.errors import InvalidField
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.model import ResourceMetadata
from node.cli.common import UsageError, add_client, call_metadata, channel, print_json
from node.cli.output import (
    DEFAULT_MAX_CELL,
    print_fields,
    print_table,
    progress_steps,
    progress_wanted,
    status,
)
from node.files.catalog import CatalogFileError, read_catalog_file, write_catalog_file
from node.grpc import convert

ENUM_CHOICES = {
    "classification": pb.Classification, "share_type": pb.ShareType, "open_type": pb.OpenType,
    "update_cycle": pb.UpdateCycle, "status": pb.ResourceStatus,
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("catalog", help="the information-resource catalog (政务信息资源目录)")
    commands = parser.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")

    listing = commands.add_parser("list", help="list and search resources")
    add_client(listing)
    listing.add_argument("--query", "-q", default="", help="words in name, summary or item names (中文 works)")
    for flag, field in (("--classification", "classification"), ("--share", "share_type"),
                        ("--open", "open_type"), ("--cycle", "update_cycle"), ("--status", "status")):
        names = [n for n in ENUM_CHOICES[field].keys() if not n.endswith("UNSPECIFIED")]
        listing.add_argument(flag, dest=field, choices=names, default=None)
    listing.add_argument("--provider", default="", help="provider's 统一社会信用代码")
    listing.add_argument("--code-prefix", default="", help="classification code prefix")
    listing.add_argument("--limit", type=int, default=0, help="stop after N resources (default: all)")
    listing.add_argument("--full", action="store_true", help="show long names whole instead of cut with …")
    listing.add_argument("--order", choices=("code", "relevance"), default="code",
                         help="code (default) or relevance: resources with every query word in the name first, "
                              "then in name or summary, then the others")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="one resource (latest version, or --version N)")
    add_client(show)
    show.add_argument("code")
    show.add_argument("--version", type=int, default=0)
    show.add_argument("--history", action="store_true", help="list every version instead")
    show.set_defaults(handler=run_show)

    imp = commands.add_parser("import", help="import a JSON or XML catalog file (atomic)")
    add_client(imp)
    imp.add_argument("file", type=Path)
    imp.add_argument("--publish", action="store_true", help="publish every imported resource")
    imp.add_argument("--replace-drafts", action="store_true", help="update existing drafts instead of failing")
    imp.add_argument("--upsert", action="store_true",
                     help="update existing resources: unchanged entries are left alone, changed published ones "
                          "open a new draft (published at once with --publish)")
    imp.set_defaults(handler=run_import)

    for action, helptext in (("create", "register a new resource (a draft) from a JSON or TOML file"),
                             ("edit", "change a resource from a JSON or TOML file (a published one gets a new draft)")):
        command = commands.add_parser(action, help=helptext)
        add_client(command)
        command.add_argument("file", type=Path, help="one resource's metadata: the `metadata` of `catalog show "
                                                     "CODE --json`, or that whole document")
        if action == "edit":
            command.add_argument("--expected-version", type=int, default=0,
                                 help="refuse if the latest version is not this one (someone else edited it)")
        command.set_defaults(handler=run_create if action == "create" else run_edit)

    exp = commands.add_parser("export", help="export the catalog as XML or JSON")
    add_client(exp)
    exp.add_argument("--format", choices=["xml", "json"], default="xml")
    exp.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    exp.add_argument("--status", choices=["DRAFT", "PUBLISHED", "RETIRED"], default="PUBLISHED")
    exp.set_defaults(handler=run_export)

    for action, helptext in (("publish", "publish the pending draft"), ("retire", "retire (下线) a resource")):
        command = commands.add_parser(action, help=helptext)
        add_client(command)
        command.add_argument("code")
        if action == "retire":
            command.add_argument("--reason", default="")
        else:
            command.add_argument("--expected-version", type=int, default=0)
        command.set_defaults(handler=run_publish if action == "publish" else run_retire)


    watch = commands.add_parser("watch", help="follow the catalog feed (one line per event; resumable)")
    add_client(watch)
    watch.add_argument("--since", default="", metavar="TOKEN",
                       help="resume after the event whose resume_token this is (printed with every event)")
    watch.add_argument("--from-beginning", action="store_true", help="replay every event first (without --since)")
    watch.add_argument("--provider", default="", help="only events of this provider (统一社会信用代码)")
    watch.add_argument("--classification", choices=[n for n in pb.Classification.keys()
                                                   if not n.endswith("UNSPECIFIED")], default=None)
    watch.add_argument("--code-prefix", default="", help="only resource codes starting with this")
    watch.add_argument("--limit", type=int, default=0, help="stop after N events (default: follow until Ctrl-C)")
    watch.set_defaults(handler=run_watch)


def _stub(args: argparse.Namespace) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(channel(args))


def resource_dict(resource: pb.Resource) -> dict[str, Any]:
    meta = convert.metadata_from_proto(resource.version.metadata)
    return {
        "code": resource.code,
        "status": pb.ResourceStatus.Name(resource.status),
        "version": resource.version.version,
        "version_state": pb.VersionState.Name(resource.version.state).removeprefix("VERSION_"),
        "latest_version": resource.latest_version,
        "published_version": resource.published_version,
        "metadata": metadata_to_dict(meta),
    }


def run_list(args: argparse.Namespace) -> int:
    stub, token = _stub(args), ""
    request = pb.ListResourcesRequest(query=args.query, provider_code=args.provider, code_prefix=args.code_prefix,
                                      page_size=200, order=pb.SEARCH_ORDER_RELEVANCE if args.order == "relevance"
                                      else pb.SEARCH_ORDER_CODE)
    for field, kind in ENUM_CHOICES.items():
        if getattr(args, field):
            setattr(request, field, kind.Value(getattr(args, field)))
    found: list[pb.Resource] = []
    total, lower_bound = 0, False
    while True:
        request.page_token = token
        page = stub.ListResources(request, metadata=call_metadata(args))
        found.extend(page.resources)
        total, lower_bound = page.total_size, page.total_is_lower_bound
        token = page.next_page_token
        if not token or (args.limit and len(found) >= args.limit):
            break
    if args.limit:
        found = found[: args.limit]
    if args.json:
        print_json({"total_size": total, "total_is_lower_bound": lower_bound, "resources": [resource_dict(r) for r in found]})
        return 0
    rows = []
    for r in found:
        meta = r.version.metadata
        rows.append((r.code, pb.ResourceStatus.Name(r.status), f"v{r.version.version}",
                     pb.ShareType.Name(meta.share_type).removeprefix("SHARE_"),
                     pb.UpdateCycle.Name(meta.update_cycle), meta.name, meta.provider_name))
    print_table(("代码 code", "状态 status", "版本", "共享 share", "更新周期 cycle", "名称 name", "提供方 provider"),
                rows, max_cell=0 if args.full else DEFAULT_MAX_CELL)
    print(f"{len(found)} of {total}{'+' if lower_bound else ''} resources", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    stub = _stub(args)
    if args.history:
        history = stub.ListResourceHistory(pb.ListResourceHistoryRequest(code=args.code), metadata=call_metadata(args))
        rows = [{"version": v.version, "state": pb.VersionState.Name(v.state).removeprefix("VERSION_"),
                 "created_at": v.created_at.ToJsonString(),
                 "published_at": v.published_at.ToJsonString() if v.HasField("published_at") else None,
                 "name": v.metadata.name} for v in history.versions]
        if args.json:
            print_json({"code": args.code, "versions": rows})
        else:
            print_table(("版本 version", "状态 state", "创建 created", "发布 published", "名称 name"),
                        [(f"v{r['version']}", r["state"], r["created_at"], r["published_at"] or "—", r["name"])
                         for r in rows], max_cell=0)
        return 0
    resource = stub.GetResource(pb.GetResourceRequest(code=args.code, version=args.version),
                                metadata=call_metadata(args))
    document = resource_dict(resource)
    if args.json:
        print_json(document)
        return 0
    print_resource_page(document)
    return 0


FIELD_LABELS = (
    ("code", "代码 code"), ("classification", "分类 classification"), ("provider_name", "提供方 provider"),
    ("provider_code", "提供方代码 provider code"), ("summary", "摘要 summary"), ("format_class", "格式 format"),
    ("format_type", "格式类型 format type"), ("format_description", "格式说明"), ("share_type", "共享属性 share"),
    ("share_condition", "共享条件 condition"), ("share_method_class", "共享方式 method"),
    ("share_method_type", "共享方式类型 method type"), ("open_type", "开放属性 open"),
    ("open_condition", "开放条件"), ("update_cycle", "更新周期 cycle"), ("publish_date", "发布日期 published"),
    ("related_codes", "关联资源 related"), ("keywords", "关键字 keywords"),
)


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "、".join(str(v) for v in value) if value else "—"
    return str(value) if value not in ("", None) else "—"


def item_type(item: dict[str, Any]) -> str:
    """``C(18)`` for strings with a length; dates and other length-less types as their name alone."""
    return f"{item['data_type']}({item['length']})" if item.get("length") else str(item["data_type"])


def print_resource_page(document: dict[str, Any]) -> None:
    meta = document["metadata"]
    print(f"{meta['name']}  ({document['code']}, {document['status']}, version {document['version']} "
          f"{document['version_state']}, latest {document['latest_version']})")
    print_fields([(label, _value(meta.get(key))) for key, label in FIELD_LABELS
                  if meta.get(key) not in (None, "", [])])
    print()
    print_table(("信息项 item", "类型 type", "必填 required", "说明 description"),
                [(i["name"], item_type(i), "是" if i["required"] else "", i.get("description", ""))
                 for i in meta["items"]], max_cell=0)


def run_import(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {args.file}: {error.strerror}") from None
    try:
        entries = read_catalog_file(data)
    except CatalogFileError as error:
        print(f"exnode: {args.file}: {error}", file=sys.stderr)
        return 1
    messages = []
    # A bar for the entries checked here; the node then imports them all in one transaction (all or
    # nothing), which reports no progress of its own: a spinner says so while it runs.
    with progress_steps(enabled=progress_wanted(args.json)) as steps:
        for done, entry in enumerate(entries, 1):
            if isinstance(entry.parsed, Exception):
                messages.append(pb.ResourceMetadata())  # placeholder: local problems are reported below
            else:
                messages.append(convert.metadata_to_proto(entry.parsed))
            steps(f"checking {args.file.name}", done, len(entries))
    local = {i: e for i, e in enumerate(entries) if isinstance(e.parsed, Exception)}
    try:
        if local:
            raise _LocalProblems()
        with status(f"the node imports {len(messages)} entries of {args.file} in one transaction…",
                    enabled=progress_wanted(args.json)):
            result = _stub(args).ImportResources(
                pb.ImportResourcesRequest(resources=messages, publish=args.publish, replace_drafts=args.replace_drafts,
                                          upsert=args.upsert),
                metadata=call_metadata(args))
    except _LocalProblems:
        _report(args.file, entries, {i: [str(p) for p in e.parsed.problems] for i, e in local.items()})
        return 1
    except grpc.RpcError as error:
        problems = _violations(error)
        if not problems:
            raise
        _report(args.file, entries, problems)
        return 1
    summary = {"file": str(args.file), "created": result.created, "updated": result.updated,
               "published": result.published, "unchanged": result.unchanged}
    if args.json:
        print_json(summary)
    else:
        print(f"imported {args.file}: {result.created} created, {result.updated} updated, "
              f"{result.published} published, {result.unchanged} unchanged")
    return 0


class _LocalProblems(Exception):
    pass


def _violations(error: grpc.RpcError) -> dict[int, list[str]]:
    """Per-entry problems from the BadRequest details of an INVALID_ARGUMENT import error."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # the details did not fit the trailers: the status code says what happened
        return {}
    out: dict[int, list[str]] = {}
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            for violation in bad.field_violations:
                head, _, rest = violation.field.partition(".")
                if head.startswith("resources[") and head.endswith("]"):
                    out.setdefault(int(head[10:-1]), []).append(f"{rest or 'entry'}: {violation.description}")
    return out


def _report(path: Path, entries: list, problems: dict[int, list[str]]) -> None:
    print(f"exnode: {path}: refused, nothing imported: {len(problems)} bad "
          f"entr{'y' if len(problems) == 1 else 'ies'} of {len(entries)}", file=sys.stderr)
    for index in sorted(problems):
        entry = entries[index]
        label = f"{entry.location}" + (f" ({entry.code})" if entry.code else "")
        for problem in problems[index]:
            print(f"  {label}: {problem}", file=sys.stderr)
    if any("already exists" in p for found in problems.values() for p in found):
        print("  (to update resources that exist, import with --upsert)", file=sys.stderr)


def read_metadata_file(path: Path) -> ResourceMetadata:
    """One resource from JSON or TOML (by content): the metadata dict, or a ``catalog show --json``
    document holding it under ``metadata``. Problems are one usage error naming the fields."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: neither a JSON object nor TOML: {error}") from None
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        data = data["metadata"]
    try:
        return metadata_from_dict(data)
    except InvalidField as error:
        raise UsageError(f"{path}: " + "; ".join(str(p) for p in error.problems)) from None


def run_create(args: argparse.Namespace) -> int:
    meta = read_metadata_file(args.file)
    resource = _stub(args).CreateResource(pb.CreateResourceRequest(metadata=convert.metadata_to_proto(meta)),
                                          metadata=call_metadata(args))
    return _print_resource(args, resource, "created")


def run_edit(args: argparse.Namespace) -> int:
    meta = read_metadata_file(args.file)
    resource = _stub(args).UpdateResource(
        pb.UpdateResourceRequest(metadata=convert.metadata_to_proto(meta), expected_version=args.expected_version),
        metadata=call_metadata(args))
    return _print_resource(args, resource, "edited")


def run_export(args: argparse.Namespace) -> int:
    stream = _stub(args).ExportResources(
        pb.ExportResourcesRequest(status=pb.ResourceStatus.Value(args.status)), metadata=call_metadata(args))
    metas = [convert.metadata_from_proto(r.version.metadata) for r in stream]
    data = write_catalog_file(metas, args.format)
    if args.out:
        args.out.write_bytes(data)
        print(f"exported {len(metas)} resources to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


def _print_resource(args: argparse.Namespace, resource: pb.Resource, verb: str) -> int:
    if args.json:
        print_json(resource_dict(resource))
    else:
        print(f"{verb} {resource.code} (version {resource.version.version}, "
              f"{pb.ResourceStatus.Name(resource.status)})")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    resource = _stub(args).PublishResource(
        pb.PublishResourceRequest(code=args.code, expected_version=args.expected_version), metadata=call_metadata(args))
    return _print_resource(args, resource, "published")


def run_retire(args: argparse.Namespace) -> int:
    resource = _stub(args).RetireResource(pb.RetireResourceRequest(code=args.code, reason=args.reason),
                                          metadata=call_metadata(args))
    return _print_resource(args, resource, "retired")


def event_dict(event: pb.CatalogEvent) -> dict[str, Any]:
    return {"position": event.sequence, "kind": pb.CatalogEventKind.Name(event.kind).removesuffix("_EVENT"),
            "code": event.code, "version": event.version, "provider_code": event.provider_code, "name": event.name,
            "classification": pb.Classification.Name(event.classification), "at": event.at.ToJsonString(),
            "resume_token": event.resume_token}


def run_watch(args: argparse.Namespace) -> int:
    """One line per event (JSON lines with --json), flushed at once so a pipe sees each event live; a
    script that keeps the last resume_token can restart with --since and misses nothing."""
    if args.since and args.from_beginning:
        raise UsageError("--since and --from-beginning exclude each other")
    if args.limit < 0:
        raise UsageError("--limit must not be negative")
    request = pb.WatchCatalogRequest(resume_token=args.since, from_beginning=args.from_beginning,
                                     provider_code=args.provider, code_prefix=args.code_prefix)
    if args.classification:
        request.classification = pb.Classification.Value(args.classification)
    stream = _stub(args).WatchCatalog(request, metadata=call_metadata(args))
    seen = 0
    try:
        for event in stream:
            document = event_dict(event)
            if event.kind == pb.CAUGHT_UP:
                # Printed in JSON so a script can keep its token; people only need to know it is live now.
                if args.json:
                    print(json.dumps({"position": event.sequence, "kind": "CAUGHT_UP",
                                      "resume_token": event.resume_token}, ensure_ascii=False), flush=True)
                else:
                    print(f"caught up at position {event.sequence}; following live "
                          f"(resume={event.resume_token})", file=sys.stderr, flush=True)
                continue
            if args.json:
                print(json.dumps(document, ensure_ascii=False), flush=True)
            else:
                print(f"{document['position']:>8} {document['kind']:<9} {event.code:<24} v{event.version:<3} "
                      f"{event.name}  [{event.provider_code}]  resume={event.resume_token}", flush=True)
            seen += 1
            if args.limit and seen >= args.limit:
                break
    finally:
        stream.cancel()
    return 0
