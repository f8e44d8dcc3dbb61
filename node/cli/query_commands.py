"""``exnode records query`` (接口服务: the current record per key), ``exnode verify claim`` (核验: a signed
verdict per asserted item) and ``exnode verdict verify`` (check a verdict file offline)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from exnode.v1 import query_pb2 as pb
from exnode.v1 import query_pb2_grpc

from node.cli.common import UsageError, add_client, call_metadata, channel, print_json


def register(sub: argparse._SubParsersAction, jobs: argparse._SubParsersAction) -> None:
    """``jobs``: the ``records`` command's actions (``records_commands``: keygen, register, send), which
    ``records query`` joins."""
    query = jobs.add_parser("query", help="the current record of each key, masked per your grant")
    add_client(query)
    query.add_argument("--resource", required=True, metavar="CODE", help="the resource code")
    query.add_argument("--key", action="append", default=[], metavar="ITEM=VALUE[,ITEM=VALUE]",
                       help="one key (repeat for more, at most 100): its key items and values")
    query.add_argument("--keys-file", type=Path, default=None, metavar="FILE",
                       help="keys as a JSON list of objects (key item → value)")
    add_decrypt(query)
    query.set_defaults(handler=run_query)

    verify = sub.add_parser("verify", help="verify claims about a record (核验)")
    vjobs = verify.add_subparsers(dest="verify_command", required=True, metavar="COMMAND")
    claim = vjobs.add_parser("claim", help="MATCH / MISMATCH / NO_RECORD per asserted item, in a signed verdict")
    add_client(claim)
    claim.add_argument("--resource", required=True, metavar="CODE", help="the resource code")
    claim.add_argument("--key", required=True, metavar="ITEM=VALUE[,ITEM=VALUE]", help="the subject's key")
    claim.add_argument("--assert", action="append", default=[], dest="claims", metavar="ITEM=VALUE",
                       help="an asserted value (repeat); a number item takes a comparison: '月保障金额=<=1200'")
    claim.add_argument("--out", type=Path, default=None, metavar="FILE",
                       help="write the verdict file (signed verdict and the request) for `exnode verdict verify`")
    add_decrypt(claim)
    claim.add_argument("--keys", type=Path, default=None, metavar="FILE",
                       help="the answering node's public-keys.json: check the verdict's signature before printing it")
    claim.set_defaults(handler=run_claim)

    verdict = sub.add_parser("verdict", help="signed verdicts of verifications")
    djobs = verdict.add_subparsers(dest="verdict_command", required=True, metavar="COMMAND")
    check = djobs.add_parser("verify", help="check a verdict file offline against the node's public keys")
    check.add_argument("file", type=Path, metavar="FILE", help="a verdict file (exnode verify claim --out)")
    check.add_argument("--keys", type=Path, required=True, metavar="FILE", help="the node's public-keys.json")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--tsa-roots", type=Path, default=None, metavar="FILE",
                       help="PEM root certificate(s) of the trusted TSA: the file's RFC 3161 timestamp must verify "
                            "(exnode verdict stamp adds it)")
    check.set_defaults(handler=run_verdict_verify)
    stamp = djobs.add_parser("stamp", help="fetch the verdict's RFC 3161 timestamp from the node and add it to the file")
    add_client(stamp)
    stamp.add_argument("file", type=Path, metavar="FILE", help="a verdict file (exnode verify claim --out)")
    stamp.set_defaults(handler=run_verdict_stamp)


def add_decrypt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decrypt-key", type=Path, default=None, metavar="FILE",
                        help="open an answer sealed to the department's registered encryption key with this private "
                             "key (PKCS#8 PEM; --key-algorithm)")
    parser.add_argument("--key-algorithm", default="X25519-HPKE", choices=("X25519-HPKE", "SM2-SM4"))


def _opener(args: argparse.Namespace, sealing: Mapping[str, str]) -> Callable[[str, str, bytes], bytes]:
    """``(context, message name, body) → opened body`` with ``--decrypt-key``; a UsageError naming the key
    the answer was sealed to when none (or another) is given."""
    from security.sealing import HEADER_KID, BadConsumerKey, ConsumerPrivateKey, TamperedCiphertext

    kid = sealing.get(HEADER_KID, "")
    if args.decrypt_key is None:
        raise UsageError(f"the answer is sealed to your department's encryption key {kid}: give --decrypt-key FILE")
    try:
        key = ConsumerPrivateKey(args.key_algorithm, args.decrypt_key.read_bytes())
    except (OSError, ValueError) as error:
        raise UsageError(f"--decrypt-key {args.decrypt_key}: not a {args.key_algorithm} private key: {error}") \
            from None

    def open_one(context: str, name: str, body: bytes) -> bytes:
        try:
            return key.open(dict(sealing), context, name, body)
        except (BadConsumerKey, TamperedCiphertext) as error:
            raise UsageError(f"--decrypt-key {args.decrypt_key}: {error}") from None

    return open_one


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """``ITEM=VALUE[,ITEM=VALUE]`` → dict; UsageError naming the option otherwise."""
    pairs: dict[str, str] = {}
    for part in text.split(","):
        item, sep, value = part.partition("=")
        if not sep or not item.strip():
            raise UsageError(f"{option} {text!r}: expected ITEM=VALUE")
        pairs[item.strip()] = value.strip()
    return pairs


def _keys(args: argparse.Namespace) -> list[dict[str, str]]:
    keys = [parse_pairs(text, "--key") for text in args.key]
    if args.keys_file is not None:
        try:
            loaded = json.loads(args.keys_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"--keys-file {args.keys_file}: {error}") from None
        if not isinstance(loaded, list) or not all(isinstance(k, dict) for k in loaded):
            raise UsageError(f"--keys-file {args.keys_file}: expected a JSON list of objects")
        keys.extend({str(k): str(v) for k, v in key.items()} for key in loaded)
    if not keys:
        raise UsageError("records query: give --key or --keys-file")
    return keys


def run_query(args: argparse.Namespace) -> int:
    stub = query_pb2_grpc.QueryServiceStub(channel(args))
    response = stub.QueryRecords(pb.QueryRecordsRequest(
        resource_code=args.resource, keys=[pb.RecordKey(values=key) for key in _keys(args)]),
        metadata=call_metadata(args))
    payload = (lambda r: r.payload)  # noqa: E731
    if response.sealing:
        from node.services.query import QUERY_AAD, query_context
        from security.sealing import HEADER_KID
        open_one = _opener(args, response.sealing)
        context = query_context(response.request_id, response.sealing.get(HEADER_KID, ""))
        payload = (lambda r: open_one(context, QUERY_AAD.format(index=r.index), r.payload))  # noqa: E731
    results = [{"index": r.index, "status": pb.KeyResult.Status.Name(r.status), "key_hash": r.key_hash,
                **({"record_id": r.record_id, "sequence": r.sequence, "record": json.loads(payload(r)),
                    "disputed": r.disputed}
                   if r.status == pb.KeyResult.FOUND else {})} for r in response.results]
    sealed_note = f"; sealed to key {response.sealing.get('x-exnode-enc-kid')}, opened" if response.sealing else ""
    answered = f"; answered by node {response.answered_by}" if response.answered_by else ""
    if args.json:
        print_json({"resource": response.resource_code, "grant": response.grant_id, "sealed": bool(response.sealing),
                    "answered_by": response.answered_by, "results": results})
        return 0
    print(f"resource {response.resource_code}, grant {response.grant_id}{answered}{sealed_note}")
    for result in results:
        if result["status"] == "FOUND":
            print(f"[{result['index']}] FOUND {result['record_id']}"
                  + (" (DISPUTED: an objection is open)" if result["disputed"] else "")
                  + f": {json.dumps(result['record'], ensure_ascii=False)}")
        else:
            print(f"[{result['index']}] NOT_FOUND")
    return 0


def run_claim(args: argparse.Namespace) -> int:
    if not args.claims:
        raise UsageError("verify claim: give at least one --assert ITEM=VALUE")
    claims = []
    for text in args.claims:
        item, sep, value = text.partition("=")
        if not sep or not item.strip():
            raise UsageError(f"--assert {text!r}: expected ITEM=VALUE")
        claims.append(pb.AssertedItem(item=item.strip(), value=value))
    stub = query_pb2_grpc.QueryServiceStub(channel(args))
    verdict = stub.VerifyClaim(pb.VerifyClaimRequest(
        resource_code=args.resource, key=pb.RecordKey(values=parse_pairs(args.key, "--key")), claims=claims),
        metadata=call_metadata(args))
    if verdict.sealed:
        from node.services.query import VERDICT_AAD, verdict_context
        from security.sealing import HEADER_KID
        context = verdict_context(verdict.request_id, verdict.sealing.get(HEADER_KID, ""))
        opened = _opener(args, verdict.sealing)(context, VERDICT_AAD, verdict.sealed)
        file = json.loads(opened)
        document = file["verdict"]
    else:
        document = json.loads(verdict.document)
        file = {"verdict": document, "signature": base64.b64encode(verdict.signature).decode(),
                "request": json.loads(verdict.request)}
    checked = ""
    if args.keys is not None:
        from security.keys import UnusableKey, read_public_keys
        from security.verdicts import verify_file
        try:
            problems = verify_file(file, read_public_keys(args.keys))
        except UnusableKey as error:
            raise UsageError(f"--keys {args.keys}: {error}") from None
        if problems:
            print(f"verdict refused: {'; '.join(problems)}", file=sys.stderr)
            return 1
        checked = f"; signature checked against {args.keys}"
    if args.out is not None:
        args.out.write_text(json.dumps(file, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print_json(file)
        return 0
    for answer in document["answers"]:
        print(f"{answer['item']}: {answer['result']}")
    if document.get("state"):
        print(f"state: {document['state']}")
    if document.get("disputed"):
        print("disputed: the record answered from is under an open objection (校核纠错)")
    print(f"verdict signed by node {document['node']} key {document['kid']} at {document['at']} "
          f"(grant {document['grant']}, request {document['request_hash'][:16]}…)"
          + (f"; sealed to key {verdict.sealing.get('x-exnode-enc-kid')}, opened" if verdict.sealed else "")
          + checked + (f"; written to {args.out}" if args.out else ""))
    return 0


def run_verdict_verify(args: argparse.Namespace) -> int:
    from security.keys import UnusableKey, read_public_keys
    from security.verdicts import verify_file

    try:
        keys = read_public_keys(args.keys)
        node_id = str(json.loads(args.keys.read_text(encoding="utf-8")).get("node_id", ""))
    except (UnusableKey, OSError, ValueError) as error:
        raise UsageError(f"--keys {args.keys}: {error}") from None
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{args.file}: {error}") from None
    problems = verify_file(data, keys, node_id)
    document = data.get("verdict", {}) if isinstance(data, dict) else {}
    stamped_at = None
    if args.tsa_roots is not None and not problems:
        stamped_at, problem = _check_timestamp(data, args.tsa_roots)
        if problem:
            problems.append(problem)
    if args.json:
        print_json({"file": str(args.file), "ok": not problems, "problems": problems,
                    "node": document.get("node"), "kid": document.get("kid"), "at": document.get("at"),
                    "answers": document.get("answers"),
                    **({"timestamp": stamped_at.isoformat() if stamped_at else None}
                       if args.tsa_roots is not None else {})})
    elif problems:
        for problem in problems:
            print(f"exnode: verdict {args.file}: {problem}", file=sys.stderr)
    else:
        answers = ", ".join(f"{a['item']} {a['result']}" for a in document.get("answers", []))
        print(f"verdict {args.file}: OK, signed by node {document['node']} key {document['kid']} at {document['at']}: "
              f"{answers}" + (f"; state {document['state']}" if document.get("state") else "")
              + (f"; RFC 3161 timestamp {stamped_at.isoformat()} (signature, TSA chain, imprint)" if stamped_at else ""))
    return 1 if problems else 0


def _check_timestamp(data: dict, roots_file: Path):  # -> tuple[datetime | None, str]
    """(the time the TSA vouches for, "") or (None, the problem) for a verdict file's ``timestamp``."""
    import datetime as dt

    from security.timestamps import Evidence, TimestampInvalid, check_evidence, load_roots
    from security.verdicts import digest_of

    if "timestamp" not in data:
        return None, "timestamp: the file has none (exnode verdict stamp FILE adds it once the node has it)"
    try:
        roots = load_roots(roots_file)
        evidence = Evidence.from_dict(data["timestamp"])
        signed_at = dt.datetime.fromisoformat(str(data["verdict"].get("at", "")))
        digest = digest_of(data["verdict"], base64.b64decode(str(data["signature"])))
        return check_evidence(evidence, digest, roots, signed_at, "timestamp"), ""
    except TimestampInvalid as error:
        return None, str(error)
    except ValueError as error:
        return None, f"verdict.at: not an ISO time ({error})"


def run_verdict_stamp(args: argparse.Namespace) -> int:
    from exnode.v1 import keys_pb2, keys_pb2_grpc

    from security.timestamps import Evidence
    from security.verdicts import digest_of

    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
        digest = digest_of(data["verdict"], base64.b64decode(str(data["signature"]), validate=True))
        signer, resource = str(data["verdict"].get("node", "")), str(data["verdict"].get("resource", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{args.file}: not a verdict file ({error})") from None
    stub = keys_pb2_grpc.KeysServiceStub(channel(args))
    # The node that signed the verdict stamped it; the node asked forwards to it when another node answered.
    found = stub.GetTimestamp(keys_pb2.GetTimestampRequest(kind="verdict", ref=digest.hex(), node_id=signer,
                                                           resource_code=resource), metadata=call_metadata(args))
    data["timestamp"] = Evidence(found.kind, found.ref, found.digest, found.index, found.size, tuple(found.proof),
                                 found.token).to_dict()
    args.file.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print_json({"file": str(args.file), "timestamp": data["timestamp"]})
    else:
        print(f"verdict {args.file}: RFC 3161 timestamp added (one of {found.size} roots of its token); check it with "
              "exnode verdict verify --tsa-roots")
    return 0


