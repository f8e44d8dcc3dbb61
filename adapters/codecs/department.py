"""Departmental platform codec (部门系统): the envelope as a ``exnode.v1.PlatformEnvelope`` protobuf message.

Record payloads travel as JSON text (``payload_json``) rather than as protobuf values: protobuf's Struct
turns every number into a double, and the signed hashes depend on 1 staying 1, not 1.0. The creation time
is a Timestamp, so it comes back in UTC (the same instant, an equal Envelope).
"""

from __future__ import annotations

import datetime as dt

from exnode.v1 import envelope_pb2 as pb
from google.protobuf.message import DecodeError

from adapters.codecs.envelope import (
    FORMAT_VERSION,
    MAX_ENVELOPE_BYTES,
    Envelope,
    EnvelopeError,
    Hop,
    check_envelope,
    check_size,
    json_dumps,
    json_loads,
)
from catalog.records import Operation, Record
from security.merkle import Proof, SignedBatch

CONTENT_TYPE = "application/x-protobuf"

_TO_WIRE = {Operation.UPSERT: pb.PLATFORM_OPERATION_UPSERT, Operation.DELETE: pb.PLATFORM_OPERATION_DELETE}
_FROM_WIRE = {wire: operation for operation, wire in _TO_WIRE.items()}


def to_message(envelope: Envelope, *, checked: bool = False) -> pb.PlatformEnvelope:
    if not checked:
        check_envelope(envelope)
    message = pb.PlatformEnvelope(
        version=FORMAT_VERSION, batch_id=envelope.batch_id, node_id=envelope.node_id,
        provider_code=envelope.provider_code, resource_code=envelope.resource_code,
        consumer_code=envelope.consumer_code,
        records=[pb.PlatformRecord(id=record.id, sequence=record.sequence, operation=_TO_WIRE[record.operation],
                                   payload_json=record.payload_json if record.payload_json is not None
                                   else json_dumps(dict(record.payload)))
                 for record in envelope.records],
        signed=pb.PlatformSignature(tree_size=envelope.signed.tree_size, root=envelope.signed.root,
                                    kid=envelope.signed.kid, algorithm=envelope.signed.algorithm,
                                    signature=envelope.signed.signature),
    )
    message.created_at.FromDatetime(envelope.created_at)
    if envelope.proof is not None:
        message.proof.CopyFrom(_proof(envelope.proof))
    message.disputed.extend(envelope.disputed)
    for hop in envelope.hops:
        message.hops.append(pb.PlatformHop(node_id=hop.node_id, batch_id=hop.batch_id, signed=_signature(hop.signed),
                                           proof=_proof(hop.proof)))
    return message


def _signature(signed: SignedBatch) -> pb.PlatformSignature:
    return pb.PlatformSignature(tree_size=signed.tree_size, root=signed.root, kid=signed.kid,
                                algorithm=signed.algorithm, signature=signed.signature)


def _proof(proof: Proof) -> pb.PlatformProof:
    return pb.PlatformProof(index=proof.index, tree_size=proof.tree_size, path=proof.path)


def _hop(message: pb.PlatformHop, where: str) -> Hop:
    for field in ("signed", "proof"):
        if not message.HasField(field):
            raise EnvelopeError(f"{where}.{field}", "is missing")
    signed, proof = message.signed, message.proof
    return Hop(message.node_id, message.batch_id,
               SignedBatch(signed.tree_size, signed.root, signed.kid, signed.algorithm, signed.signature),
               Proof(proof.index, proof.tree_size, tuple(proof.path)))


def encode(envelope: Envelope, *, checked: bool = False) -> bytes:
    """The serialized PlatformEnvelope; ``decode(encode(e)) == e``. ``checked``: as ``regional.encode``."""
    return to_message(envelope, checked=checked).SerializeToString(deterministic=True)


def _record(message: pb.PlatformRecord, where: str) -> Record:
    operation = _FROM_WIRE.get(message.operation)
    if operation is None:
        raise EnvelopeError(f"{where}.operation", f"{message.operation} is not UPSERT (1) or DELETE (2)")
    payload = json_loads(message.payload_json, f"{where}.payload_json")
    if not isinstance(payload, dict):
        raise EnvelopeError(f"{where}.payload_json", "must be a JSON object")
    return Record(message.id, message.sequence, operation, payload)


def from_message(message: pb.PlatformEnvelope) -> Envelope:
    if message.version != FORMAT_VERSION:
        raise EnvelopeError("version", f"{message.version} is not a version this node reads (it reads {FORMAT_VERSION})")
    for field in ("created_at", "signed"):
        if not message.HasField(field):
            raise EnvelopeError(field, "is missing")
    try:
        created_at = message.created_at.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError) as error:
        raise EnvelopeError("created_at", f"is not a usable time: {error}") from None
    signed = message.signed
    envelope = Envelope(
        batch_id=message.batch_id, node_id=message.node_id, provider_code=message.provider_code,
        resource_code=message.resource_code, consumer_code=message.consumer_code,
        created_at=created_at,
        records=tuple(_record(record, f"records[{index}]") for index, record in enumerate(message.records)),
        signed=SignedBatch(signed.tree_size, signed.root, signed.kid, signed.algorithm, signed.signature),
        proof=Proof(message.proof.index, message.proof.tree_size, tuple(message.proof.path))
        if message.HasField("proof") else None,
        hops=tuple(_hop(hop, f"hops[{index}]") for index, hop in enumerate(message.hops)),
        disputed=tuple(message.disputed),
    )
    return check_envelope(envelope)


def decode(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """The envelope of a serialized PlatformEnvelope; EnvelopeError naming the first bad field."""
    check_size(data, max_bytes)
    message = pb.PlatformEnvelope()
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as error:
        raise EnvelopeError("document", f"is not a PlatformEnvelope message: {error}") from None
    return from_message(message)
