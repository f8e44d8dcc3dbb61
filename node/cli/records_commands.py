"""``exnode records keygen|register|send``: a data provider signs and sends records from JSON lines
without writing a gRPC client.

``send`` is resumable: after each batch the node acknowledged, the number of lines sent is written to
``FILE.sent.json``; a re-run sends only what was not acknowledged (and a batch sent again after a break
is harmless: the node stores each record id once and reports it as a duplicate).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc

from catalog.records import Operation, Record
from node.cli.common import UsageError, add_client, call_metadata, channel, print_json
from node.cli.output import progress, progress_wanted
from security.keys import ALGORITHMS, UnusableKey, create_provider_key, load_provider_key

DEFAULT_KEY_DIR = Path("provider-key")
MAX_LINE_BYTES = 1024 * 1024


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``records`` command; its actions are returned, for ``records query`` (``query_commands``)."""
    parser = sub.add_parser("records", help="records: a provider's keys, signing and sending; keyed queries (接口服务)")
    commands = parser.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    keygen = commands.add_parser("keygen", help="make the provider's signing key (kept in --key-dir)")
    keygen.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR, help="default ./provider-key")
    keygen.add_argument("--algorithm", choices=ALGORITHMS, default="Ed25519")
    keygen.add_argument("--json", action="store_true")
    keygen.set_defaults(handler=run_keygen)

    reg = commands.add_parser("register", help="register the provider key's public half with the node "
                                               "(catalog_admin of the department, or an operator)")
    add_client(reg)
    reg.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR)
    reg.add_argument("--dept", required=True, help="the providing department's 统一社会信用代码")
    reg.set_defaults(handler=run_register)

    send = commands.add_parser("send", help="sign and send records from a JSON-lines file (resumable)")
    add_client(send)
    send.add_argument("file", type=Path, help='one record a line: {"id": …, "sequence": N, "operation": '
                                              '"UPSERT"|"DELETE", "payload": {item: value, …}}')
    send.add_argument("--resource", required=True, help="the resource code the records belong to")
    send.add_argument("--provider", required=True, help="the providing department's 统一社会信用代码")
    send.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR)
    send.add_argument("--batch", type=int, default=500, help="records per signed batch (default 500)")
    send.add_argument("--restart", action="store_true", help="forget what was sent and send the whole file again")
    send.set_defaults(handler=run_send)
    return commands


def run_keygen(args: argparse.Namespace) -> int:
    try:
        key, public_pem = create_provider_key(args.key_dir, args.algorithm)
    except UnusableKey as error:
        raise UsageError(str(error)) from None
    if args.json:
        print_json({"key_dir": str(args.key_dir), "kid": key.kid, "algorithm": key.algorithm, "public_pem": public_pem})
    else:
        print(f"created provider key {key.kid} ({key.algorithm}) in {args.key_dir}; register it with "
              f"`exnode records register --key-dir {args.key_dir} --dept CODE`")
    return 0


def _key(directory: Path) -> tuple[Any, str]:
    try:
        return load_provider_key(directory)
    except UnusableKey as error:
        raise UsageError(str(error)) from None


def run_register(args: argparse.Namespace) -> int:
    key, public_pem = _key(args.key_dir)
    registered = exchange_pb2_grpc.ExchangeServiceStub(channel(args)).RegisterKey(
        pb.RegisterKeyRequest(department_code=args.dept, algorithm=key.algorithm, public_pem=public_pem),
        metadata=call_metadata(args))
    if args.json:
        print_json({"key_id": registered.key_id, "department_code": registered.department_code,
                    "algorithm": registered.algorithm})
    else:
        print(f"registered key {registered.key_id} ({registered.algorithm}) for department "
              f"{registered.department_code}")
    return 0


class LineError(Exception):
    """A record line that cannot be sent: the message names the line and the field."""


def parse_line(text: str, number: int) -> Record:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LineError(f"line {number}: not JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise LineError(f"line {number}: must be a JSON object")
    record_id, sequence = data.get("id"), data.get("sequence", number)
    operation, payload = str(data.get("operation", "UPSERT")).upper(), data.get("payload", {})
    if not isinstance(record_id, str) or not record_id.strip():
        raise LineError(f"line {number}: id: is required (text)")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise LineError(f"line {number}: sequence: must be a whole number ≥ 1, not {sequence!r}")
    if operation not in Operation.__members__:
        raise LineError(f"line {number}: operation: must be UPSERT or DELETE, not {operation!r}")
    if not isinstance(payload, dict):
        raise LineError(f"line {number}: payload: must be an object of item name → value")
    return Record(record_id, sequence, Operation(operation), payload)


def _state_path(path: Path) -> Path:
    return path.with_name(path.name + ".sent.json")


def _fingerprint(path: Path, lines: int) -> str:
    """The first ``lines`` lines' hash: a resumed send must continue the same file, not an edited one."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for _ in range(lines):
            digest.update(handle.readline())
    return digest.hexdigest()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def _batch_id(provider: str, resource: str, kid: str, name: str, first: int, last: int,
              chunk_lines: Sequence[str]) -> str:
    """The batch's id, from where its lines are AND what they say: a lost answer's batch is recognised
    when sent again, while another file of the same name (or an edited one sent with --restart) is a new
    batch that the node checks record by record, never a replay taken as acknowledged unseen."""
    digest = hashlib.sha256(f"{provider}|{resource}|{kid}|{name}|{first}-{last}|".encode())
    for line in chunk_lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def run_send(args: argparse.Namespace) -> int:
    from node.pipeline import provider_batch

    if args.batch < 1 or args.batch > 5000:
        raise UsageError("--batch must be 1-5000 (the node's exchange.max_batch_records is 5000 by default)")
    key, _ = _key(args.key_dir)
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read {args.file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{args.file}: not UTF-8 text") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    try:
        records = [(n, parse_line(line, n)) for n, line in numbered]
    except LineError as error:
        print(f"exnode: {args.file}: {error}; nothing sent", file=sys.stderr)
        return 1
    state_path = _state_path(args.file)
    done = 0
    if state_path.exists() and not args.restart:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if (state.get("resource"), state.get("provider")) != (args.resource, args.provider):
            raise UsageError(f"{state_path} is a send of {state.get('resource')} by {state.get('provider')}; "
                             "--restart to send this file anew")
        done = int(state.get("lines_acknowledged", 0))
        if done > len(lines) or _fingerprint(args.file, done) != state.get("fingerprint"):
            raise UsageError(f"{args.file} changed since {state_path} was written; --restart to send it anew")
    pending = [(n, r) for n, r in records if n > done]
    stub = exchange_pb2_grpc.ExchangeServiceStub(channel(args))
    totals = {"accepted": 0, "duplicates": 0, "batches": 0, "gaps": []}
    with progress(f"send {args.file.name}", len(pending), enabled=progress_wanted(args.json), unit="records") as bar:
        for start in range(0, len(pending), args.batch):
            chunk = pending[start:start + args.batch]
            last_line = chunk[-1][0]
            batch_id = _batch_id(args.provider, args.resource, key.kid, args.file.name, chunk[0][0], last_line,
                                 [lines[n - 1] for n, _ in chunk])
            batch = provider_batch(args.provider, args.resource, [r for _, r in chunk], key, batch_id=batch_id)
            message = pb.RecordBatch(
                batch_id=batch.batch_id, provider_code=batch.provider_code, resource_code=batch.resource_code,
                merkle_root=batch.merkle_root, key_id=batch.kid, signature=batch.signature,
                records=[pb.Record(id=r.id, sequence=r.sequence, operation=pb.Operation.Value(r.operation.value),
                                   payload=json.dumps(dict(r.payload), ensure_ascii=False).encode())
                         for r in batch.records])
            try:
                answer = stub.Ingest(message, metadata=call_metadata(args))
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                    raise
                # The batch id is derived from the lines it holds: the node stored this very batch before
                # (its answer was lost, or --restart): acknowledged, every record a duplicate.
                answer = pb.IngestResponse(batch_id=batch_id, accepted=0, duplicates=len(chunk))
            # acknowledged: the node stored the batch (and its audit entries) before answering
            _save_state(state_path, {"resource": args.resource, "provider": args.provider, "key_id": key.kid,
                                     "lines_acknowledged": last_line, "fingerprint": _fingerprint(args.file, last_line)})
            totals["accepted"] += answer.accepted
            totals["duplicates"] += answer.duplicates
            totals["batches"] += 1
            totals["gaps"] += list(answer.sequence_gaps)  # type: ignore[operator]
            bar.advance(len(chunk))
    summary = {"file": str(args.file), "records": len(pending), "skipped_as_sent": len(records) - len(pending),
               **totals}
    if args.json:
        print_json(summary)
    else:
        gaps = f"; sequence gaps {', '.join(totals['gaps'])}" if totals["gaps"] else ""  # type: ignore[arg-type]
        print(f"sent {len(pending)} records of {args.file} in {totals['batches']} batches: {totals['accepted']} "
              f"stored, {totals['duplicates']} duplicates; {len(records) - len(pending)} sent before{gaps}")
    return 0
