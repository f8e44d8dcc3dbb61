"""Regional platform codec (省级、自治区平台): the envelope as one UTF-8 JSON document.

The field names are those of ``Envelope``; ``signed`` is ``SignedBatch.to_dict`` (root and signature in
hex); a one-record envelope of the relay adds ``proof`` (``Proof.to_dict``: index, tree_size, path in hex), and
across tiers ``hops`` (a list of node_id, batch_id, signed, proof), and ``disputed`` (the ids of records under an
open objection, 校核纠错) when there are any. Decoding is strict: an unknown or missing field, a value of the wrong type, a duplicate key, NaN or
Infinity is refused with an EnvelopeError naming the field (``records[2].sequence``), because a payload
that two parsers could read differently would hash differently on each side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from adapters.codecs.envelope import (
    FORMAT_VERSION,
    MAX_ENVELOPE_BYTES,
    MAX_HOPS,
    Envelope,
    EnvelopeError,
    Hop,
    check_envelope,
    check_size,
    json_dumps,
    json_loads,
    parse_created_at,
)
from catalog.records import Operation, Record
from security.merkle import Proof, SignedBatch

CONTENT_TYPE = "application/json"

_TOP = ("version", "batch_id", "node_id", "provider_code", "resource_code", "consumer_code", "created_at",
        "records", "signed")
_RECORD = ("id", "sequence", "operation", "payload")
_SIGNED = ("tree_size", "root", "kid", "algorithm", "signature")
_PROOF = ("index", "tree_size", "path")
_HOP = ("node_id", "batch_id", "signed", "proof")


def encode(envelope: Envelope, *, checked: bool = False) -> bytes:
    """Compact UTF-8 JSON with Chinese text unescaped; ``decode(encode(e)) == e``.

    ``checked``: the envelope comes from ``seal``/``seal_split``, which checked every field already.

    Spelled out rather than one ``json.dumps`` of a document: the relay encodes one envelope per record,
    and the parts of one batch share everything but the record and its proof, which ``_shared`` keeps
    serialised; a payload's canonical text (``Record.payload_json``) is reused as it is."""
    if not checked:
        check_envelope(envelope)
    head, signed = _shared(envelope.batch_id, envelope.node_id, envelope.provider_code, envelope.resource_code,
                           envelope.consumer_code, envelope.created_at, envelope.signed)
    parts = [head, ",".join(_record_json(record) for record in envelope.records), signed]
    proof = envelope.proof
    if proof is not None:
        path = ",".join(f'"{h.hex()}"' for h in proof.path)
        parts.append(f',"proof":{{"index":{int(proof.index)},"tree_size":{int(proof.tree_size)},"path":[{path}]}}')
    if envelope.hops:
        parts.append(',"hops":' + json_dumps([{"node_id": hop.node_id, "batch_id": hop.batch_id,
                                               "signed": hop.signed.to_dict(), "proof": hop.proof.to_dict()}
                                              for hop in envelope.hops]))
    if envelope.disputed:
        parts.append(',"disputed":' + json_dumps(list(envelope.disputed)))
    parts.append("}")
    return "".join(parts).encode()


@lru_cache(maxsize=16)
def _shared(batch_id: str, node_id: str, provider_code: str, resource_code: str, consumer_code: str,
            created_at: dt.datetime, signed: SignedBatch) -> tuple[str, str]:
    """The document up to its records, and from its records to the signature."""
    head = json_dumps({"version": FORMAT_VERSION, "batch_id": batch_id, "node_id": node_id,
                       "provider_code": provider_code, "resource_code": resource_code,
                       "consumer_code": consumer_code, "created_at": created_at.isoformat()})
    return head[:-1] + ',"records":[', '],"signed":' + json_dumps(signed.to_dict())


def _record_json(record: Record) -> str:
    payload = record.payload_json if record.payload_json is not None else json_dumps(dict(record.payload))
    return (f'{{"id":{encode_basestring(record.id)},"sequence":{int(record.sequence)},'
            f'"operation":{encode_basestring(record.operation.value)},"payload":{payload}}}')


def _object(value: Any, where: str, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """The object at ``where``, with exactly ``fields`` (and any of ``optional``)."""
    if not isinstance(value, dict):
        raise EnvelopeError(where or "document", f"must be a JSON object, not {_kind(value)}")
    prefix = f"{where}." if where else ""
    for name in value:
        if name not in fields and name not in optional:
            raise EnvelopeError(f"{prefix}{name}", f"is not a field here (known: {', '.join(fields + optional)})")
    for name in fields:
        if name not in value:
            raise EnvelopeError(f"{prefix}{name}", "is missing")
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(field, f"must be a string, not {_kind(value)}")
    return value


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(field, f"must be a whole number, not {_kind(value)}")
    return value


def _hex(value: Any, field: str) -> bytes:
    try:
        return bytes.fromhex(_text(value, field))
    except ValueError:
        raise EnvelopeError(field, "is not hexadecimal") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _record(value: Any, where: str) -> Record:
    fields = _object(value, where, _RECORD)
    operation = _text(fields["operation"], f"{where}.operation")
    if operation not in Operation.__members__:
        raise EnvelopeError(f"{where}.operation", f"{operation!r} is not UPSERT or DELETE")
    payload = fields["payload"]
    if not isinstance(payload, dict):
        raise EnvelopeError(f"{where}.payload", f"must be a JSON object, not {_kind(payload)}")
    return Record(_text(fields["id"], f"{where}.id"), _integer(fields["sequence"], f"{where}.sequence"),
                  Operation(operation), payload)


def decode(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """The envelope of a regional JSON document; EnvelopeError naming the first bad field."""
    check_size(data, max_bytes)
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise EnvelopeError("document", f"is not UTF-8 (byte {error.start})") from None
    document = _object(json_loads(text, "document"), "", _TOP, ("proof", "hops", "disputed"))
    version = document["version"]
    if _integer(version, "version") != FORMAT_VERSION:
        raise EnvelopeError("version", f"{version} is not a version this node reads (it reads {FORMAT_VERSION})")
    records = document["records"]
    if not isinstance(records, list):
        raise EnvelopeError("records", f"must be a JSON array, not {_kind(records)}")
    signed = _object(document["signed"], "signed", _SIGNED)
    envelope = Envelope(
        batch_id=_text(document["batch_id"], "batch_id"), node_id=_text(document["node_id"], "node_id"),
        provider_code=_text(document["provider_code"], "provider_code"),
        resource_code=_text(document["resource_code"], "resource_code"),
        consumer_code=_text(document["consumer_code"], "consumer_code"),
        created_at=parse_created_at(_text(document["created_at"], "created_at")),
        records=tuple(_record(record, f"records[{index}]") for index, record in enumerate(records)),
        signed=SignedBatch(_integer(signed["tree_size"], "signed.tree_size"), _hex(signed["root"], "signed.root"),
                           _text(signed["kid"], "signed.kid"), _text(signed["algorithm"], "signed.algorithm"),
                           _hex(signed["signature"], "signed.signature")),
        proof=_proof(document["proof"]) if "proof" in document else None,
        hops=_hops(document.get("hops", [])),
        disputed=_disputed(document.get("disputed", [])),
    )
    return check_envelope(envelope)


def _proof(value: Any, where: str = "proof") -> Proof:
    fields = _object(value, where, _PROOF)
    path = fields["path"]
    if not isinstance(path, list):
        raise EnvelopeError(f"{where}.path", f"must be a JSON array, not {_kind(path)}")
    return Proof(_integer(fields["index"], f"{where}.index"), _integer(fields["tree_size"], f"{where}.tree_size"),
                 tuple(_hex(h, f"{where}.path[{i}]") for i, h in enumerate(path)))


def _signed(value: Any, where: str) -> SignedBatch:
    signed = _object(value, where, _SIGNED)
    return SignedBatch(_integer(signed["tree_size"], f"{where}.tree_size"), _hex(signed["root"], f"{where}.root"),
                       _text(signed["kid"], f"{where}.kid"), _text(signed["algorithm"], f"{where}.algorithm"),
                       _hex(signed["signature"], f"{where}.signature"))


def _disputed(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise EnvelopeError("disputed", f"must be a JSON array, not {_kind(value)}")
    return tuple(_text(item, f"disputed[{index}]") for index, item in enumerate(value))


def _hops(value: Any) -> tuple[Hop, ...]:
    if not isinstance(value, list):
        raise EnvelopeError("hops", f"must be a JSON array, not {_kind(value)}")
    if len(value) > MAX_HOPS:
        raise EnvelopeError("hops", f"{len(value)} hops; at most {MAX_HOPS}")
    hops = []
    for index, item in enumerate(value):
        where = f"hops[{index}]"
        fields = _object(item, where, _HOP)
        hops.append(Hop(_text(fields["node_id"], f"{where}.node_id"), _text(fields["batch_id"], f"{where}.batch_id"),
                        _signed(fields["signed"], f"{where}.signed"), _proof(fields["proof"], f"{where}.proof")))
    return tuple(hops)
