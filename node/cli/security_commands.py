"""``exnode token``, ``exnode keys`` and ``exnode audit``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from exnode.v1 import audit_pb2 as pb
from exnode.v1 import audit_pb2_grpc, keys_pb2, keys_pb2_grpc

from node.cli.common import (
    UsageError,
    add_client,
    add_data,
    call_metadata,
    channel,
    data_dir,
    print_json,
    server_address,
)
from node.cli.output import display_width, print_table
from node.config import load_config
from node.services.secrecy import list_data_keys, reencrypt, retire_data_key, rotate_data
from node.storage.database import make_engine, migrate
from node.storage.secrecy import Sealer
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.audit import VerifyResult
from security.identity import issue_dev_token
from security.keys import ALGORITHMS, PUBLIC_KEYS_FILE, KeyStore, read_public_keys, write_public_keys

if TYPE_CHECKING:
    from security.timestamps import Evidence

DETAIL_WIDTH = 48
TIMESTAMPS_FORMAT = "exnode-audit-timestamps/1"
"""The file `exnode audit stamp` keeps beside an export: each checkpoint's RFC 3161 evidence by sequence."""
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub: argparse._SubParsersAction) -> None:
    token = sub.add_parser("token", help="development tokens (the node must trust the development issuer)")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    issue = token_commands.add_parser("issue", help="print a token signed by this data directory's development issuer")
    add_data(issue)
    issue.add_argument("--dept", required=True, help="department 统一社会信用代码")
    issue.add_argument("--roles", required=True, help="comma-separated: catalog_admin,provider,consumer,reviewer,"
                                                      "security_officer,platform,operator")
    issue.add_argument("--subject", default="dev-user", help="the token's sub (default dev-user)")
    issue.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h, 2d (default 8h)")
    issue.set_defaults(handler=run_token_issue)

    keys = sub.add_parser("keys", help="the node's signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    listing = key_commands.add_parser("list", help="the public keys: from the node (--server) or the data directory")
    add_client(listing)
    listing.add_argument("--local", action="store_true", help="read the data directory instead of asking the node")
    listing.set_defaults(handler=run_keys_list)
    rotate = key_commands.add_parser("rotate", help="make a new active key; old keys stay for verification")
    add_data(rotate)
    rotate.add_argument("--algorithm", choices=ALGORITHMS, default=None, help="default: the active key's")
    rotate.set_defaults(handler=run_keys_rotate)
    rotate_data = key_commands.add_parser("rotate-data", help="new key-encryption key; re-wrap the data keys "
                                                              "(records are not re-encrypted)")
    add_data(rotate_data)
    rotate_data.add_argument("--json", action="store_true", help="machine-readable output")
    rotate_data.set_defaults(handler=run_keys_rotate_data)
    data_keys = key_commands.add_parser("data", help="the data keys that encrypt records at rest")
    add_data(data_keys)
    data_keys.add_argument("--json", action="store_true", help="machine-readable output")
    data_keys.set_defaults(handler=run_keys_data)
    retire = key_commands.add_parser("retire-data", help="retire a data key (then run `exnode keys reencrypt`)")
    add_data(retire)
    retire.add_argument("key_id", help="a data key id from `exnode keys data`")
    retire.set_defaults(handler=run_keys_retire_data)
    consumer_new = key_commands.add_parser("consumer-new", help="make a consumer's encryption key pair: the private "
                                                                "key to FILE (0600), the public key on stdout")
    consumer_new.add_argument("--out", type=Path, required=True, metavar="FILE")
    consumer_new.add_argument("--algorithm", choices=("X25519-HPKE", "SM2-SM4"), default="X25519-HPKE")
    consumer_new.set_defaults(handler=run_keys_consumer_new)
    consumer_register = key_commands.add_parser("consumer-register", help="register a department's encryption "
                                                                          "public key with the node")
    add_client(consumer_register)
    consumer_register.add_argument("--dept", required=True, help="the consumer department's 统一社会信用代码")
    consumer_register.add_argument("--public", type=Path, required=True, metavar="FILE",
                                   help="SubjectPublicKeyInfo PEM (what consumer-new printed)")
    consumer_register.add_argument("--algorithm", choices=("X25519-HPKE", "SM2-SM4"), default="X25519-HPKE")
    consumer_register.set_defaults(handler=run_keys_consumer_register)
    again = key_commands.add_parser("reencrypt", help="seal records under retired keys (or in clear) with live ones")
    add_data(again)
    again.set_defaults(handler=run_keys_reencrypt)

    audit = sub.add_parser("audit", help="the audit trail (security_officer)")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    query = audit_commands.add_parser("query", help="entries, newest first, with filters")
    add_client(query)
    for name in ("subject", "dept", "action", "target", "result"):
        query.add_argument(f"--{name}", default="")
    query.add_argument("--since", default=None, help="ISO time, e.g. 2026-11-23T00:00:00+08:00")
    query.add_argument("--until", default=None)
    query.add_argument("--limit", type=int, default=100)
    query.add_argument("--full", action="store_true", help="show long details whole instead of cut with …")
    query.set_defaults(handler=run_audit_query)
    export = audit_commands.add_parser("export", help="JSON lines with the checkpoints, verifiable offline")
    add_client(export)
    export.add_argument("--since", default=None)
    export.add_argument("--until", default=None)
    export.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    export.set_defaults(handler=run_audit_export)
    verify = audit_commands.add_parser("verify", help="check the hash chain and the signed checkpoints")
    add_client(verify)
    verify.add_argument("--file", type=Path, default=None, help="verify an export file offline")
    verify.add_argument("--keys", type=Path, default=None,
                        help=f"trusted public keys for --file (default: <data>/keys/{PUBLIC_KEYS_FILE})")
    verify.add_argument("--local", action="store_true",
                        help="verify the data directory's database directly (the node may be stopped)")
    verify.add_argument("--tsa-roots", type=Path, default=None, metavar="FILE",
                        help="also check every signed checkpoint's RFC 3161 timestamp here, with these trusted TSA "
                             "root certificates (PEM) and --keys: against a node, its export and the node's "
                             "timestamps; with --file, the timestamps `exnode audit stamp` wrote beside it")
    verify.add_argument("--timestamps", type=Path, default=None, metavar="FILE",
                        help="with --file and --tsa-roots: the checkpoints' timestamps written by `exnode audit "
                             "stamp` (default: the export's name + .timestamps.json)")
    verify.set_defaults(handler=run_audit_verify)
    stamp = audit_commands.add_parser("stamp", help="fetch the RFC 3161 timestamps of an export's checkpoints from "
                                                    "the node, to verify the export offline later")
    add_client(stamp)
    stamp.add_argument("file", type=Path, help="an export file (exnode audit export --out FILE)")
    stamp.add_argument("--out", type=Path, default=None,
                       help="file to write (default: FILE.timestamps.json)")
    stamp.set_defaults(handler=run_audit_stamp)
    purge = audit_commands.add_parser("purge", help="apply the retention period now (the node also does it daily)")
    add_data(purge)
    purge.set_defaults(handler=run_audit_purge)


def _duration(text: str) -> dt.timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--ttl {text!r}: use a number and a unit, e.g. 30m, 8h, 2d")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def run_token_issue(args: argparse.Namespace) -> int:
    config = load_config(data_dir(args))
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    try:
        token = issue_dev_token(config.keys_dir, config.node.id, config.audience, subject=args.subject,
                                department_code=args.dept, roles=roles, lifetime=_duration(args.ttl))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not config.auth.trust_dev_issuer:
        print("exnode: note: this node does not trust the development issuer (auth.trust_dev_issuer = false)",
              file=sys.stderr)
    print(token)
    return 0


def run_keys_list(args: argparse.Namespace) -> int:
    if args.local:
        config = load_config(data_dir(args))
        store = KeyStore.load(config.keys_dir)
        keys = [{"kid": k.kid, "algorithm": k.algorithm, "created_at": k.created_at, "active": k.kid == store.active.kid,
                 "public_pem": k.public_pem} for k in store.public.values()]
        node_id = config.node.id
    else:
        stub = keys_pb2_grpc.KeysServiceStub(channel(args))
        response = stub.ListPublicKeys(keys_pb2.ListPublicKeysRequest(), metadata=call_metadata(args))
        keys = [{"kid": k.kid, "algorithm": k.algorithm, "created_at": k.created_at, "active": k.active,
                 "public_pem": k.public_pem} for k in response.keys]
        node_id = response.node_id
    if args.json:
        print_json({"node_id": node_id, "keys": keys})
        return 0
    print_table(("kid", "algorithm", "created_at", "active"),
                [(k["kid"], k["algorithm"], k["created_at"], "active" if k["active"] else "") for k in keys], max_cell=0)
    return 0


def run_keys_rotate(args: argparse.Namespace) -> int:
    config = load_config(data_dir(args))
    store = KeyStore.load(config.keys_dir).rotate(args.algorithm)
    path = write_public_keys(store, config.node.id)
    print(f"new active key {store.active.kid} ({store.active.algorithm}); {len(store.public)} keys kept for "
          f"verification; published in {path}. A running node signs with the new key after a restart.")
    return 0


def _data_keys_uow(args: argparse.Namespace) -> tuple[KeyStore, SqlUnitOfWorkFactory]:
    config = load_config(data_dir(args))
    keys = KeyStore.load(config.keys_dir)
    migrate(config.database_url)
    return keys, SqlUnitOfWorkFactory(make_engine(config.database_url, pool_size=1), Sealer(keys))


def run_keys_rotate_data(args: argparse.Namespace) -> int:
    keys, uow = _data_keys_uow(args)
    rotation = rotate_data(keys, uow)
    if args.json:
        print_json({"kek_id": rotation.kek_id, "previous_kek_id": rotation.previous_kek_id,
                    "rewrapped": rotation.rewrapped})
    else:
        print(f"new key-encryption key {rotation.kek_id}; {rotation.rewrapped} data keys re-wrapped (records "
              f"unchanged). Keep kek-{rotation.previous_kek_id}.key for backups taken before now.")
    return 0


def run_keys_data(args: argparse.Namespace) -> int:
    _, uow = _data_keys_uow(args)
    found, clear = list_data_keys(uow)
    if args.json:
        print_json({"clear_records": clear, "keys": [
            {"key_id": k.key_id, "scope": k.scope, "period": k.period, "algorithm": k.algorithm, "kek_id": k.kek_id,
             "created_at": k.created_at.isoformat(), "retired": k.retired_at is not None, "records": k.records}
            for k in found]})
        return 0
    for k in found:
        print(f"{k.key_id}  {k.algorithm:<11} {k.scope:<24} {k.period}  kek {k.kek_id}  {k.records} records"
              + ("  (retired)" if k.retired_at else ""))
    print(f"{clear} records stored in clear (from before encryption at rest)")
    return 0


def run_keys_retire_data(args: argparse.Namespace) -> int:
    _, uow = _data_keys_uow(args)
    retire_data_key(uow, args.key_id, dt.datetime.now(dt.UTC))
    print(f"data key {args.key_id} retired; `exnode keys reencrypt` moves its records to live keys")
    return 0


def run_keys_consumer_new(args: argparse.Namespace) -> int:
    import os

    from security.sealing import ConsumerPrivateKey

    key = ConsumerPrivateKey.generate(args.algorithm)
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"--out {args.out} exists: choose a new file (a key is never overwritten)") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_pem)
    print(key.public_pem, end="")
    print(f"exnode: private key {key.kid} ({key.algorithm}) written to {args.out}", file=sys.stderr)
    return 0


def run_keys_consumer_register(args: argparse.Namespace) -> int:
    from exnode.v1 import exchange_pb2, exchange_pb2_grpc

    try:
        public_pem = args.public.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"--public {args.public}: {error.strerror}") from None
    registered = exchange_pb2_grpc.ExchangeServiceStub(channel(args)).RegisterEncryptionKey(
        exchange_pb2.RegisterEncryptionKeyRequest(department_code=args.dept, algorithm=args.algorithm,
                                                  public_pem=public_pem), metadata=call_metadata(args))
    print(f"encryption key {registered.key_id} ({registered.algorithm}) registered for {registered.department_code}"
          "; messages relayed to it are sealed to it from now on")
    return 0


def run_keys_reencrypt(args: argparse.Namespace) -> int:
    _, uow = _data_keys_uow(args)
    moved = reencrypt(uow, lambda: dt.datetime.now(dt.UTC))
    print(f"{moved} rows sealed again under live data keys")
    return 0


def _timestamp(text: str | None, option: str, message: pb.QueryAuditRequest | pb.ExportAuditRequest) -> None:
    if not text:
        return
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--{option} {text!r} is not an ISO time (e.g. 2026-11-23T08:00:00+08:00)") from None
    if when.tzinfo is None:
        raise UsageError(f"--{option} {text!r} needs a UTC offset (e.g. +08:00)")
    getattr(message, option).FromDatetime(when.astimezone(dt.UTC))


def _audit_stub(args: argparse.Namespace) -> audit_pb2_grpc.AuditServiceStub:
    return audit_pb2_grpc.AuditServiceStub(channel(args))


def run_audit_query(args: argparse.Namespace) -> int:
    request = pb.QueryAuditRequest(subject=args.subject, department_code=args.dept, action=args.action,
                                   target=args.target, result=args.result, page_size=min(args.limit, 500))
    _timestamp(args.since, "since", request)
    _timestamp(args.until, "until", request)
    stub, found = _audit_stub(args), []
    while len(found) < args.limit:
        page = stub.QueryAudit(request, metadata=call_metadata(args))
        found.extend(page.entries)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    found = found[: args.limit]
    if args.json:
        print_json([{"sequence": e.sequence, "at": e.at.ToJsonString(), "request_id": e.request_id,
                     "subject": e.subject, "department_code": e.department_code, "roles": list(e.roles),
                     "action": e.action, "target": e.target, "result": e.result, "peer": e.peer, "detail": e.detail}
                    for e in found])
        return 0
    print_table(("序号 seq", "时间 at", "结果 result", "操作 action", "主体 subject", "目标 target", "详情 detail"),
                [(e.sequence, e.at.ToJsonString(), e.result, e.action,
                  f"{e.subject}@{e.department_code}" if e.department_code else e.subject, e.target, e.detail)
                 for e in found], max_cell=0 if args.full else DETAIL_WIDTH, align=(">",))
    if not args.full and any(display_width(e.detail) > DETAIL_WIDTH for e in found):
        print("(long fields cut with …; --full shows them whole, --json as data)", file=sys.stderr)
    return 0


def run_audit_export(args: argparse.Namespace) -> int:
    request = pb.ExportAuditRequest()
    _timestamp(args.since, "since", request)
    _timestamp(args.until, "until", request)
    out = args.out.open("wb") if args.out else sys.stdout.buffer
    lines = 0
    try:
        for chunk in _audit_stub(args).ExportAudit(request, metadata=call_metadata(args)):
            out.write(chunk.jsonl)
            lines += chunk.jsonl.count(b"\n")
    finally:
        if args.out:
            out.close()
    if args.out and args.json:
        print_json({"file": str(args.out), "lines": lines})
    elif args.out:  # a file was asked for: say what is in it (with stdout the lines themselves are the answer)
        print(f"exported {lines} lines (header, entries, signed checkpoints) to {args.out}; check it offline with "
              f"exnode audit verify --file {args.out}")
    return 0


def _result_fields(result: VerifyResult) -> dict[str, object]:
    return {"ok": result.ok, "entries_checked": result.entries_checked,
            "checkpoints_checked": result.checkpoints_checked,
            "first_broken_sequence": result.first_broken_sequence, "problem": result.problem,
            "unsigned_tail": result.unsigned_tail, "first_sequence": result.first_sequence,
            "last_sequence": result.last_sequence}


def _report(result: VerifyResult, what: str, as_json: bool) -> int:
    if as_json:
        print_json(_result_fields(result))
    elif result.ok:
        print(f"audit verify: OK ({what}): entries {result.first_sequence}..{result.last_sequence}, "
              f"{result.entries_checked} entries, {result.checkpoints_checked} signed checkpoints, "
              f"{result.unsigned_tail} {'entry' if result.unsigned_tail == 1 else 'entries'} after the last checkpoint")
    else:
        print(f"audit verify: FAILED ({what}) at entry {result.first_broken_sequence}: {result.problem}")
    return 0 if result.ok else 1


def run_audit_verify(args: argparse.Namespace) -> int:
    if args.file:
        from node.services.audit import verify_export
        from security.audit import ExportFileError

        keys_path = args.keys or load_config(data_dir(args)).keys_dir / PUBLIC_KEYS_FILE
        if not keys_path.exists():
            raise UsageError(f"no trusted public keys: {keys_path} does not exist; pass --keys with the node's "
                             "published public-keys.json (the keys inside an export are not trusted)")
        keys = read_public_keys(keys_path)
        try:
            with args.file.open(encoding="utf-8") as handle:
                result = verify_export(handle, keys)
        except ExportFileError as error:
            print(f"audit verify: FAILED ({args.file}): {error}")
            return 1
        if args.tsa_roots is None or not result.ok:
            return _report(result, str(args.file), args.json)
        if not args.json:
            _report(result, str(args.file), False)
        return _verify_file_timestamps(args, result)
    if args.local:
        return _verify_local(args)
    try:
        response = _audit_stub(args).VerifyAudit(pb.VerifyAuditRequest(), metadata=call_metadata(args))
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.UNAVAILABLE or args.server:
            raise
        # A stopped node: its own database is at hand, so verify that rather than fail on the dial.
        print(f"exnode audit verify: no node answers at {server_address(args)}; verifying the database of "
              f"{data_dir(args)} directly (as --local does)", file=sys.stderr)
        return _verify_local(args)
    result = VerifyResult(ok=response.ok, entries_checked=response.entries_checked,
                          checkpoints_checked=response.checkpoints_checked,
                          first_broken_sequence=response.first_broken_sequence, problem=response.problem,
                          unsigned_tail=response.unsigned_tail, first_sequence=response.first_sequence,
                          last_sequence=response.last_sequence)
    if args.tsa_roots is None or not result.ok:
        return _report(result, "node", args.json)
    if not args.json:
        _report(result, "node", False)
    return _verify_checkpoint_timestamps(args, result)


def _verify_checkpoint_timestamps(args: argparse.Namespace, node_result: VerifyResult) -> int:
    """The node's word is not the evidence: export the trail, check its chain and checkpoints here with the
    trusted keys, then each checkpoint's RFC 3161 token (KeysService.GetTimestamp) offline: signature, the
    TSA's chain to --tsa-roots, the imprint through the inclusion proof, a token of another checkpoint or
    dated before the checkpoint (replayed). Checkpoints still waiting for the TSA are counted, not failed."""
    from node.services.audit import verify_export
    from security.audit import ExportFileError, read_export
    from security.timestamps import TimestampInvalid, load_roots

    keys_path = args.keys or load_config(data_dir(args)).keys_dir / PUBLIC_KEYS_FILE
    if not keys_path.exists():
        raise UsageError(f"--tsa-roots needs the node's trusted public keys: {keys_path} does not exist; pass --keys")
    keys = read_public_keys(keys_path)
    try:
        roots = load_roots(args.tsa_roots)
    except TimestampInvalid as error:
        raise UsageError(str(error)) from None
    text = b"".join(chunk.jsonl for chunk in _audit_stub(args).ExportAudit(pb.ExportAuditRequest(),
                                                                           metadata=call_metadata(args)))
    lines = text.decode("utf-8").splitlines()
    try:
        result = verify_export(lines, keys)
        _, _, checkpoints = read_export(lines)
    except ExportFileError as error:
        print(f"audit verify: FAILED (export of the node): {error}")
        return 1
    if not result.ok:
        return _report(result, "export of the node, checked here", args.json)
    stamped, waiting, problems = _check_checkpoints(checkpoints, _node_evidence(args), roots)
    return _timestamps_report(node_result, stamped, waiting, problems, args.json, "the exported trail checks here too")


def _node_evidence(args: argparse.Namespace) -> Callable[[int], Evidence | None]:
    """The node's RFC 3161 evidence of a checkpoint (KeysService.GetTimestamp), None while it waits for the
    TSA or when it was signed before the node had one."""
    from security.timestamps import Evidence

    stub = keys_pb2_grpc.KeysServiceStub(channel(args))

    def fetch(sequence: int) -> Evidence | None:
        try:
            found = stub.GetTimestamp(keys_pb2.GetTimestampRequest(kind="checkpoint", ref=str(sequence)),
                                      metadata=call_metadata(args))
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                return None
            raise
        return Evidence(found.kind, found.ref, found.digest, found.index, found.size, tuple(found.proof), found.token)
    return fetch


def _check_checkpoints(checkpoints: Sequence[Any], evidence_of: Callable[[int], Evidence | None],
                       roots: Any) -> tuple[int, int, list[str]]:
    """(stamped, waiting, problems): each checkpoint's token checked offline against its signed statement."""
    from security.timestamps import TimestampInvalid, check_evidence, signed_digest

    stamped, waiting, problems = 0, 0, []
    for checkpoint in checkpoints:
        what = f"checkpoint {checkpoint.sequence}'s timestamp"
        try:
            evidence = evidence_of(checkpoint.sequence)
            if evidence is None:
                waiting += 1
                continue
            check_evidence(evidence, signed_digest(checkpoint.message(), checkpoint.signature), roots, checkpoint.at,
                           what)
            stamped += 1
        except TimestampInvalid as error:
            problems.append(str(error))
    return stamped, waiting, problems


def _timestamps_report(result: VerifyResult, stamped: int, waiting: int, problems: list[str], as_json: bool,
                       lead: str) -> int:
    if as_json:
        print_json({**_result_fields(result), "ok": not problems, "timestamps_checked": stamped,
                    "timestamps_waiting": waiting, "timestamp_problems": problems})
    for problem in problems:
        print(f"audit verify: timestamp FAILED: {problem}", file=sys.stderr)
    if not as_json:
        print(f"audit verify: {lead}; {stamped} checkpoint RFC 3161 timestamps verify "
              f"offline (signature, TSA chain, imprint){f'; {waiting} not stamped (yet)' if waiting else ''}")
    return 1 if problems else 0


def _timestamps_path(export: Path) -> Path:
    return export.with_name(export.name + ".timestamps.json")


def _verify_file_timestamps(args: argparse.Namespace, file_result: VerifyResult) -> int:
    """An export checked offline with the timestamps `exnode audit stamp` kept beside it: nothing is asked
    of the node. Evidence of another checkpoint, a replayed or foreign token fails naming the checkpoint."""
    from security.audit import ExportFileError, read_export
    from security.timestamps import Evidence, TimestampInvalid, load_roots

    path = args.timestamps or _timestamps_path(args.file)
    if not path.exists():
        raise UsageError(f"no timestamps for {args.file}: {path} does not exist; run `exnode audit stamp {args.file}` "
                         "against the node first (or pass --timestamps FILE)")
    try:
        roots = load_roots(args.tsa_roots)
    except TimestampInvalid as error:
        raise UsageError(str(error)) from None
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        by_sequence = kept["checkpoints"]
        if kept.get("format") != TIMESTAMPS_FORMAT or not isinstance(by_sequence, dict):
            raise ValueError(f"not an {TIMESTAMPS_FORMAT} file")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        print(f"audit verify: FAILED ({path}): {error}")
        return 1
    try:
        _, _, checkpoints = read_export(args.file.read_text(encoding="utf-8").splitlines())
    except ExportFileError as error:
        print(f"audit verify: FAILED ({args.file}): {error}")
        return 1

    def evidence_of(sequence: int) -> Evidence | None:
        data = by_sequence.get(str(sequence))
        return None if data is None else Evidence.from_dict(data, f"{path}: checkpoint {sequence}")
    stamped, waiting, problems = _check_checkpoints(checkpoints, evidence_of, roots)
    return _timestamps_report(file_result, stamped, waiting, problems, args.json, f"timestamps from {path}")


def run_audit_stamp(args: argparse.Namespace) -> int:
    """Keep the node's timestamps of an export's checkpoints beside it (as `exnode pull stamp` does for a
    pull): `exnode audit verify --file` then checks them without the node."""
    from security.audit import ExportFileError, read_export

    try:
        _, _, checkpoints = read_export(args.file.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {args.file}: {error}") from None
    except ExportFileError as error:
        print(f"audit stamp: FAILED ({args.file}): {error}")
        return 1
    fetch = _node_evidence(args)
    kept: dict[str, object] = {}
    waiting = 0
    for checkpoint in checkpoints:
        evidence = fetch(checkpoint.sequence)
        if evidence is None:
            waiting += 1
        else:
            kept[str(checkpoint.sequence)] = evidence.to_dict()
    out = args.out or _timestamps_path(args.file)
    out.write_text(json.dumps({"format": TIMESTAMPS_FORMAT, "export": args.file.name, "checkpoints": kept},
                              ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print_json({"file": str(out), "stamped": len(kept), "waiting": waiting})
    else:
        print(f"audit stamp: {len(kept)} of {len(checkpoints)} checkpoints' RFC 3161 timestamps written to {out}"
              + (f"; {waiting} not stamped yet: run it again later" if waiting else ""))
    return 0


def _verify_local(args: argparse.Namespace) -> int:
    from node import bootstrap

    node = bootstrap.build(load_config(data_dir(args)), apply_migrations=False, start_audit=False)
    try:
        code = _report(node.audit.verify(), "database", args.json)
        if node.timestamps is None:
            return code
        count, problems = node.timestamps.verify()  # the RFC 3161 tokens over checkpoints and batch roots
        for problem in problems:
            print(f"audit verify: timestamp FAILED: {problem}", file=sys.stderr)
        if not problems and not args.json:
            print(f"audit verify: {count} RFC 3161 timestamps verify (signature, TSA chain, imprint)")
        return code or (1 if problems else 0)
    finally:
        node.engine.dispose()


def run_audit_purge(args: argparse.Namespace) -> int:
    from node import bootstrap

    node = bootstrap.build(load_config(data_dir(args)), start_audit=False)
    try:
        done = bootstrap.run_housekeeping(node)
    finally:
        node.engine.dispose()
    retention = node.config.audit.retention_days
    if done["purged"]:
        print(f"purged {done['purged']} entries older than {retention} days; the chain now starts after the "
              f"signed checkpoint {done['anchor']}")
    else:
        print(f"nothing to purge (retention {retention} days)")
    if done["expired"]:
        print(f"expired {len(done['expired'])} undecided demands: {', '.join(done['expired'])}")  # type: ignore[arg-type]
    return 0
