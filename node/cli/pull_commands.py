"""``exnode pull`` (the reference client of the nightly pull) and ``exnode batch nightly`` (close a day)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from exnode.v1 import exchange_pb2_grpc, keys_pb2, keys_pb2_grpc

from node.cli.common import UsageError, add_client, add_data, call_metadata, channel, data_dir, print_json
from node.cli.output import progress, progress_wanted
from node.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    pull = sub.add_parser("pull", help="pull everything this platform is entitled to since CURSOR, verified, into DIR")
    add_client(pull)
    pull.add_argument("--since", default="", metavar="CURSOR",
                      help="the cursor the last pull printed (default: from the beginning)")
    pull.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="where verified pulls are written (required)")
    pull.add_argument("--keys", type=Path, default=None,
                      help="the node's published public-keys.json (default: ask the node, KeysService)")
    pull.add_argument("--until-day", default="", metavar="YYYY-MM-DD",
                      help="only up to the close of that Beijing day (exnode batch nightly)")
    pull.add_argument("--decrypt-key", type=Path, default=None, metavar="FILE",
                      help="ask for batches sealed to the department's registered encryption key and open them with "
                           "this private key (PKCS#8 PEM; --key-algorithm)")
    pull.add_argument("--key-algorithm", default="X25519-HPKE", choices=("X25519-HPKE", "SM2-SM4"))
    pull.add_argument("--replay", action="store_true",
                      help="start at --since even if this platform acknowledged past it")
    pull.add_argument("--tsa-roots", type=Path, default=None, metavar="FILE",
                      help="PEM root certificate(s) of the trusted TSA: fetch the manifest's RFC 3161 timestamp when "
                           "the node has it already and check it offline (else: exnode pull stamp DIR later)")
    pull.set_defaults(handler=run_pull)
    pull_jobs = pull.add_subparsers(dest="pull_command", metavar="verify | stamp")
    verify = pull_jobs.add_parser("verify", help="re-verify a published pull directory offline")
    verify.add_argument("directory", type=Path, metavar="DIR", help="a published DIR/pull-… directory")
    verify.add_argument("--keys", type=Path, required=True, dest="verify_keys", metavar="FILE",
                        help="the node's published public-keys.json")
    verify.add_argument("--json", action="store_true", dest="verify_json", help="machine-readable output")
    verify.add_argument("--tsa-roots", type=Path, default=None, dest="verify_tsa_roots", metavar="FILE",
                        help="PEM root certificate(s) of the trusted TSA: DIR/timestamp.json must verify too")
    verify.set_defaults(handler=run_pull_verify)
    stamp = pull_jobs.add_parser("stamp", help="fetch the manifest's RFC 3161 timestamp, check it offline, keep it "
                                               "in DIR/timestamp.json")
    stamp.add_argument("directory", type=Path, metavar="DIR", help="a published DIR/pull-… directory")
    stamp.add_argument("--tsa-roots", type=Path, required=True, dest="stamp_tsa_roots", metavar="FILE",
                       help="PEM root certificate(s) of the trusted TSA")
    # the node's address and the token after `stamp` too (`exnode pull stamp DIR --token T`, as every other
    # command takes them); SUPPRESS keeps what was given before `stamp` when they are not repeated
    stamp.add_argument("--server", default=argparse.SUPPRESS, help="HOST:PORT of the node (default: the config's)")
    stamp.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (default $EXNODE_TOKEN)")
    stamp.add_argument("--data", type=Path, default=argparse.SUPPRESS, help="the node's data directory")
    stamp.set_defaults(handler=run_pull_stamp)

    batch = sub.add_parser("batch", help="the node's batch jobs")
    jobs = batch.add_subparsers(dest="batch_command", required=True, metavar="JOB")
    nightly = jobs.add_parser("nightly", help="close a day (Beijing time): its signed manifest, stored and as XML")
    add_data(nightly)
    nightly.add_argument("--date", default="", metavar="YYYY-MM-DD", help="the day to close (default: yesterday)")
    nightly.add_argument("--out", type=Path, default=None,
                         help="the XML file (default: <data>/manifests/day-YYYY-MM-DD.xml)")
    nightly.add_argument("--json", action="store_true", help="machine-readable output")
    nightly.set_defaults(handler=run_nightly)


def _trusted(args: argparse.Namespace):  # -> TrustedNode
    from node.clients.pull import PullProblem, trusted_from_document

    if args.keys is not None:
        try:
            return trusted_from_document(json.loads(args.keys.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise UsageError(f"--keys {args.keys}: {error}") from None
        except PullProblem as error:
            raise UsageError(f"--keys {args.keys}: {error}") from None
    stub = keys_pb2_grpc.KeysServiceStub(channel(args))
    response = stub.ListPublicKeys(keys_pb2.ListPublicKeysRequest(), metadata=call_metadata(args))
    return trusted_from_document({"node_id": response.node_id, "keys": [
        {"kid": k.kid, "algorithm": k.algorithm, "public_pem": k.public_pem} for k in response.keys]})


def run_pull(args: argparse.Namespace) -> int:
    from node.clients.pull import PullProblem, pull

    if args.out is None:
        raise UsageError("pull: --out DIR is required")
    if args.until_day:
        _day(args.until_day, "--until-day")
    trusted = _trusted(args)
    key = None
    if args.decrypt_key is not None:
        from security.sealing import ConsumerPrivateKey
        try:
            key = ConsumerPrivateKey(args.key_algorithm, args.decrypt_key.read_bytes())
        except (OSError, ValueError) as error:
            raise UsageError(f"--decrypt-key {args.decrypt_key}: not a {args.key_algorithm} private key: {error}") \
                from None
    stub = exchange_pb2_grpc.ExchangeServiceStub(channel(args))
    metadata = call_metadata(args)
    try:
        with progress("pull", None, enabled=progress_wanted(args.json), unit="records verified") as bar:
            outcome = pull(lambda requests: stub.Pull(requests, metadata=metadata), trusted, args.out,
                           since=args.since, replay=args.replay, until_day=args.until_day, key=key,
                           report=lambda line: print(f"exnode: pull: {line}", file=sys.stderr), on_batch=bar.advance)
    except PullProblem as error:
        print(f"exnode: pull refused: {error}", file=sys.stderr)
        return 1
    stamped = None
    if args.tsa_roots is not None:
        from node.clients.pull_evidence import EvidenceProblem
        try:
            stamped = _fetch_timestamp(args, outcome.directory, args.tsa_roots, wait_ok=True)
        except EvidenceProblem as error:
            print(f"exnode: pull: the manifest's timestamp does not verify: {error}", file=sys.stderr)
            return 1
    if args.json:
        document = {"next_cursor": outcome.next_cursor, "directory": str(outcome.directory),
                    "records": outcome.records, "batches": outcome.batches, "resumed": outcome.resumed}
        if args.tsa_roots is not None:
            document["timestamp"] = stamped.isoformat() if stamped else None
        print_json(document)
    else:
        print(outcome.next_cursor)
    return 0


def run_pull_verify(args: argparse.Namespace) -> int:
    """Exit 0 with a one-line summary, 1 with one line naming the first thing that does not verify."""
    from node.clients.pull import PullProblem, trusted_from_document
    from node.clients.pull_evidence import EvidenceProblem, check_timestamp, verify_published

    try:
        trusted = trusted_from_document(json.loads(args.verify_keys.read_text(encoding="utf-8")))
    except (OSError, ValueError, PullProblem) as error:
        raise UsageError(f"--keys {args.verify_keys}: {error}") from None
    as_json = args.verify_json or args.json
    stamped = None
    try:
        verified = verify_published(args.directory, trusted.node_id, trusted.keys)
        if args.verify_tsa_roots is not None:
            stamped = check_timestamp(args.directory, _roots(args.verify_tsa_roots))
    except EvidenceProblem as error:
        if as_json:
            print_json({"ok": False, "directory": str(args.directory), "problem": str(error)})
        else:
            print(f"pull verify: FAILED ({args.directory}): {error}")
        return 1
    if as_json:
        print_json({"ok": True, "directory": str(verified.directory), "node": verified.node_id,
                    "platform": verified.platform, "since": verified.since, "next_cursor": verified.next_cursor,
                    "records": verified.records, "batches": verified.batches, "streams": verified.streams,
                    **({"timestamp": stamped.isoformat() if stamped else None}
                       if args.verify_tsa_roots is not None else {})})
    else:
        print(f"pull verify: OK ({args.directory}): {verified.records} records in {verified.batches} batches "
              f"({verified.streams} stream{'s' if verified.streams > 1 else ''}), every batch signed, contiguous "
              f"from since to next cursor {verified.next_cursor}, manifest signed"
              + (f", RFC 3161 timestamp {stamped.isoformat()} (signature, TSA chain, imprint)" if stamped else ""))
    return 0


def _roots(path: Path) -> list:
    from security.timestamps import TimestampInvalid, load_roots

    try:
        return load_roots(path)
    except TimestampInvalid as error:
        raise UsageError(str(error)) from None


def _fetch_timestamp(args: argparse.Namespace, directory: Path, roots_file: Path,
                     wait_ok: bool = False) -> dt.datetime | None:
    """Fetch the manifest's evidence (KeysService.GetTimestamp), check it offline, write timestamp.json; None
    when the node has it not yet and ``wait_ok`` (said on stderr). EvidenceProblem when it does not verify."""
    import grpc

    from node.clients.pull_evidence import TIMESTAMP_FILE, check_timestamp, manifest_digest
    from security.timestamps import Evidence

    roots = _roots(roots_file)
    digest = manifest_digest(directory)
    stub = keys_pb2_grpc.KeysServiceStub(channel(args))
    try:
        found = stub.GetTimestamp(keys_pb2.GetTimestampRequest(kind="pull", ref=digest.hex()),
                                  metadata=call_metadata(args))
    except grpc.RpcError as error:
        if wait_ok and error.code() is grpc.StatusCode.UNAVAILABLE:
            print(f"exnode: pull: {error.details()}; run `exnode pull stamp {directory} --tsa-roots {roots_file}` "
                  "then", file=sys.stderr)
            return None
        raise
    evidence = Evidence(found.kind, found.ref, found.digest, found.index, found.size, tuple(found.proof), found.token)
    path = directory / TIMESTAMP_FILE
    path.write_text(json.dumps(evidence.to_dict(), indent=2) + "\n", encoding="utf-8")
    try:
        return check_timestamp(directory, roots)
    except Exception:
        path.unlink()  # what does not verify is not kept as the pull's evidence
        raise


def run_pull_stamp(args: argparse.Namespace) -> int:
    from node.clients.pull_evidence import EvidenceProblem

    try:
        stamped = _fetch_timestamp(args, args.directory, args.stamp_tsa_roots)
    except EvidenceProblem as error:
        print(f"pull stamp: FAILED ({args.directory}): {error}")
        return 1
    assert stamped is not None
    print(f"pull stamp: OK ({args.directory}): RFC 3161 timestamp {stamped.isoformat()} kept in timestamp.json")
    return 0


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a date YYYY-MM-DD") from None


def run_nightly(args: argparse.Namespace) -> int:
    from catalog.lists import BEIJING
    from node import bootstrap
    from node.files.manifest_xml import day_manifest_xml

    config = load_config(data_dir(args))
    node = bootstrap.build(config, start_audit=False)
    try:
        day = _day(args.date, "--date") if args.date else (node.pull.clock().astimezone(BEIJING).date()
                                                           - dt.timedelta(days=1))
        manifest, created = node.pull.close_day(day)
        xml = day_manifest_xml(manifest, node.keys.public[manifest.kid].algorithm)
    finally:
        node.engine.dispose()
    path = args.out or config.data_dir / "manifests" / f"day-{manifest.day}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(xml)
    tmp.replace(path)
    document = json.loads(manifest.document)
    if args.json:
        print_json({**document, "created": created, "xml": str(path), "kid": manifest.kid,
                    "signature": manifest.signature.hex()})
        return 0
    print(f"day {manifest.day} ({'closed now' if created else 'already closed'}): {document['record_count']} records, "
          f"merkle root {document['merkle_root']}, positions {document['first_position']}-{document['last_position']}, "
          f"high water {document['high_water']}")
    for entry in document["resources"]:
        print(f"  {entry['provider']} {entry['resource']}: {entry['records']}")
    print(f"xml: {path}")
    return 0
