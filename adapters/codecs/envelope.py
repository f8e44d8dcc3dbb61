"""交换信封 (exchange envelope): one signed batch of records as it leaves the node for a platform.

The envelope is the same whatever the wire format (ministry XML, regional JSON, departmental protobuf):
the codecs only change how it is spelled. Its signature is the node's ``SignedBatch`` over the Merkle root
of the records' canonical forms (``catalog.records.canonical_record``), so a platform verifies any wire
format, and any single record with an inclusion proof, against the same root.

What the signature covers: every record (id, sequence, operation, payload) together with the provider and
resource codes, which are part of each leaf, and the number of records. The other header fields
(batch id, node id, consumer code, creation time) are routing information and are not signed.

Masking (数据脱敏) is applied *before* sealing (``masked`` then ``seal``), so that the signature covers what
the consumer receives and a consumer can verify without ever seeing the unmasked values.

Two shapes travel: a whole batch (``proof`` is None; inbound platforms send these, and files), and one
record of a batch (``split``): the relay publishes one AMQP message per record, so that every message
carries its record id (DESIGN §5: receivers deduplicate and acknowledge per record), and each such
envelope carries the record's inclusion proof next to the batch signature, so it verifies on its own.

``disputed`` (校核纠错) names the envelope's records under an open objection at the node that sealed it:
routing information like the header, not signed, because an objection neither changes the record nor its
signature; the node re-publishes a record marked when an objection is raised, so subscribers learn of it.

Across tiers (department → region → ministry) a one-record envelope also carries ``hops``: the earlier
nodes' (node id, batch id, SignedBatch, Proof) over the *same* record, oldest first, so the top verifies
every node's signature (``verify_chain``). A node relays a record it received from a peer unchanged when
its grant lets it (masking is applied once, at the origin; see ``node/services/tiers.py``); if masking
changed the record, the earlier signatures no longer cover it and the hops are left off.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterError
from catalog.codes import credit_code_problem, resource_code_problem
from catalog.records import (
    MAX_RECORD_ID,
    MAX_SEQUENCE,
    Operation,
    Record,
    canonical_payload,
    canonical_record,
)
from security.masking import masker
from security.merkle import (
    HASH_SIZE,
    BatchSigner,
    BatchVerifier,
    MerkleTree,
    Proof,
    SignedBatch,
    leaf_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
)

FORMAT_VERSION = 1
"""Version of the envelope layout in every wire format; a decoder refuses any other."""

MAX_ENVELOPE_BYTES = 32 * 1024 * 1024
"""Default limit of an encoded envelope a decoder accepts, checked before anything is parsed."""

_RECORD_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_RECORD_ID}}}")  # the record ids catalog.records accepts
_HANDLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""Batch ids and node ids: they end up in queue names, file names and log lines."""

TrustedKeys = Mapping[str, Mapping[str, BatchVerifier]]
"""Node id → (key id → public key): the keys each trusted node publishes (``security.keys.read_public_keys``).

Keys are held per node so that a key of one node can never vouch for an envelope claiming another node."""


class EnvelopeError(AdapterError, ValueError):
    """An envelope cannot be built, encoded or decoded. ``field`` names the culprit (``records[3].sequence``,
    ``signed.root``, ``document`` for the encoded bytes as a whole)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Hop:
    """One earlier node on a record's way up: its signature over its batch and the record's place in it."""

    node_id: str
    batch_id: str
    signed: SignedBatch
    proof: Proof


MAX_HOPS = 16
"""More than the three tiers need; a decoder refuses longer chains (they would be a loop or an attack)."""


@dataclass(frozen=True)
class Envelope:
    """交换信封: a batch of one provider's records of one resource, for one consumer, signed by the node."""

    batch_id: str
    node_id: str
    """The node that sealed the envelope; its published keys verify ``signed``."""
    provider_code: str
    resource_code: str
    consumer_code: str
    """统一社会信用代码 of the department the envelope is for; its grant decided what the records show."""
    created_at: dt.datetime
    records: tuple[Record, ...]
    signed: SignedBatch
    proof: Proof | None = None
    """For a one-record envelope cut from a batch (``split``): where the record sits in the signed tree."""
    hops: tuple[Hop, ...] = ()
    """Earlier nodes' signatures over the same record, oldest first (one-record envelopes only)."""
    disputed: tuple[str, ...] = ()
    """Ids of the records (in record order) under an open objection (校核纠错) when sealed; not signed."""


def leaves(envelope: Envelope) -> list[bytes]:
    """The leaf data of the envelope's Merkle tree, in record order."""
    return [canonical_record(envelope.provider_code, envelope.resource_code, record) for record in envelope.records]


def _tree(provider_code: str, resource_code: str, records: Sequence[Record]) -> MerkleTree:
    return MerkleTree.from_leaves(canonical_record(provider_code, resource_code, record) for record in records)


def masked(records: Iterable[Record], grant_items: Sequence[str], grant_masking: Mapping[str, str]
           ) -> tuple[Record, ...]:
    """The records as the grant lets the consumer see them: only granted items, each masked by its rule.

    Call before ``seal``. A DELETE normally carries no payload; if it does, that payload is masked like any
    other, because a department never sees data it has no grant for, whatever the operation.
    """
    mask = masker(grant_items, grant_masking)
    return tuple(Record(record.id, record.sequence, record.operation, payload, canonical_payload(payload))
                 for record in records for payload in (mask(record.payload) if record.payload else {},))


def seal(*, batch_id: str, node_id: str, provider_code: str, resource_code: str, consumer_code: str,
         records: Iterable[Record], signer: BatchSigner, now: dt.datetime) -> Envelope:
    """Check the records, build their Merkle tree and sign its root with the node's key.

    Raises EnvelopeError for anything no codec could carry faithfully (a naive time, a value that is not
    text, number, true/false or null, a non-finite number, a bad record id or sequence).
    """
    records = tuple(records)
    check_header(batch_id=batch_id, node_id=node_id, provider_code=provider_code, resource_code=resource_code,
                 consumer_code=consumer_code, created_at=now)
    for index, record in enumerate(records):
        check_record(record, f"records[{index}]")
    signed = SignedBatch.sign_tree(_tree(provider_code, resource_code, records), signer)
    return Envelope(batch_id, node_id, provider_code, resource_code, consumer_code, now, records, signed)


def split(envelope: Envelope) -> list[Envelope]:
    """One envelope per record of a whole-batch envelope, each with its inclusion proof and the batch's
    signature: what the relay publishes, one AMQP message per record."""
    if envelope.proof is not None:
        raise ValueError("split takes a whole batch, not one record cut from one")
    tree = _tree(envelope.provider_code, envelope.resource_code, envelope.records)
    return _parts(envelope, tree)


def seal_split(*, batch_id: str, node_id: str, provider_code: str, resource_code: str, consumer_code: str,
               records: Iterable[Record], signer: BatchSigner, now: dt.datetime, checked: bool = False,
               disputed: Iterable[str] = ()) -> list[Envelope]:
    """``split(seal(...))`` with the Merkle tree built once: the relay's hot path.

    ``checked``: the records passed ``catalog.records.payload_problems`` (which refuses what no codec could
    carry) and were then only masked, so checking each value again is skipped."""
    records = tuple(records)
    check_header(batch_id=batch_id, node_id=node_id, provider_code=provider_code, resource_code=resource_code,
                 consumer_code=consumer_code, created_at=now)
    if not checked:
        for index, record in enumerate(records):
            check_record(record, f"records[{index}]")
    tree = _tree(provider_code, resource_code, records)
    whole = Envelope(batch_id, node_id, provider_code, resource_code, consumer_code, now, records,
                     SignedBatch.sign_tree(tree, signer))
    return _parts(whole, tree, frozenset(disputed))


def _parts(envelope: Envelope, tree: MerkleTree, disputed: frozenset[str] = frozenset()) -> list[Envelope]:
    disputed = disputed | frozenset(envelope.disputed)
    return [Envelope(envelope.batch_id, envelope.node_id, envelope.provider_code, envelope.resource_code,
                     envelope.consumer_code, envelope.created_at, (record,), envelope.signed, tree.proof(index),
                     disputed=(record.id,) if record.id in disputed else ())
            for index, record in enumerate(envelope.records)]


def with_hops(part: Envelope, hops: Sequence[Hop]) -> Envelope:
    """The one-record envelope carrying the earlier nodes' signatures over its record."""
    return Envelope(part.batch_id, part.node_id, part.provider_code, part.resource_code, part.consumer_code,
                    part.created_at, part.records, part.signed, part.proof, tuple(hops), part.disputed)


def as_hop(envelope: Envelope) -> Hop:
    """This one-record envelope's own signature, as the next node passes it on."""
    if envelope.proof is None:
        raise ValueError("only a one-record envelope with its proof is a hop")
    return Hop(envelope.node_id, envelope.batch_id, envelope.signed, envelope.proof)


Verified = set[tuple[str, SignedBatch]]
"""(node id, signed batch) pairs whose signature already verified: the one-record envelopes of one batch
share its signature, so a receiver holding many of them checks it once (DESIGN §12: one verify per record
would cap the rate) and only each record's inclusion proof per record."""


def _signature_holds(node_id: str, signed: SignedBatch, key: BatchVerifier, verified: Verified | None) -> bool:
    if verified is not None and (node_id, signed) in verified:
        return True
    if not signed.verify_signature(key):
        return False
    if verified is not None:
        verified.add((node_id, signed))
    return True


def verify(envelope: Envelope, trusted: TrustedKeys, verified: Verified | None = None) -> list[str]:
    """Every reason not to trust the envelope; an empty list means it is intact and signed by its node.

    Checks that the node is one we hold keys for, that the records hash to the signed root (a whole batch:
    the signed size is the number of records; one record: its inclusion proof leads to the signed root in
    a tree of the signed size), and that the signature verifies with the node's key named by ``kid``.
    """
    problems: list[str] = []
    signed = envelope.signed
    node_keys = trusted.get(envelope.node_id)
    if node_keys is None:
        problems.append(f"node_id: {envelope.node_id!r} is not a node whose keys are trusted here")
    proof = envelope.proof
    if proof is None:
        if signed.tree_size != len(envelope.records):
            problems.append(f"signed.tree_size: the signature covers {signed.tree_size} records, "
                            f"the envelope holds {len(envelope.records)}")
        root = root_from_leaf_hashes([leaf_hash(data) for data in leaves(envelope)])
    elif len(envelope.records) != 1 or proof.tree_size != signed.tree_size:
        problems.append("proof: a proof goes with exactly one record of a tree of the signed size")
        root = b""
    else:
        try:
            root = root_from_inclusion_proof(leaf_hash(leaves(envelope)[0]), proof.index, proof.tree_size, proof.path)
        except ValueError as error:
            problems.append(f"proof: {error}")
            root = b""
    if root and root != signed.root:
        problems.append(f"signed.root: the records hash to {root.hex()}, the signature covers {signed.root.hex()} "
                        "(a record was changed, added, removed or reordered)")
    if node_keys is not None:
        key = node_keys.get(signed.kid)
        if key is None:
            problems.append(f"signed.kid: node {envelope.node_id!r} has no key {signed.kid!r}")
        elif key.algorithm != signed.algorithm:
            problems.append(f"signed.algorithm: key {signed.kid!r} is {key.algorithm}, "
                            f"the envelope says {signed.algorithm}")
        elif not _signature_holds(envelope.node_id, signed, key, verified):
            problems.append(f"signed.signature: does not verify with key {signed.kid!r} of node {envelope.node_id!r}")
    return problems


def verify_chain(envelope: Envelope, trusted: TrustedKeys, verified: Verified | None = None) -> list[str]:
    """``verify`` of the envelope and, for every earlier hop, that its proof leads the same record to the
    hop's signed root and that the hop's node signed it; an empty list means every signature holds."""
    problems = verify(envelope, trusted, verified)
    if envelope.hops:
        if envelope.proof is None or len(envelope.records) != 1:
            return [*problems, "hops: only a one-record envelope carries hops"]
        problems.extend(verify_hops(leaves(envelope)[0], envelope.hops, trusted, verified))
    return problems


def verify_hops(leaf: bytes, hops: Sequence[Hop], trusted: TrustedKeys, verified: Verified | None = None
                ) -> list[str]:
    """Every reason the hops do not all vouch for the record whose canonical form is ``leaf``."""
    problems: list[str] = []
    digest = leaf_hash(leaf)
    for position, hop in enumerate(hops):
        where = f"hops[{position}] ({hop.node_id})"
        try:
            root = root_from_inclusion_proof(digest, hop.proof.index, hop.proof.tree_size, hop.proof.path)
        except ValueError as error:
            problems.append(f"{where}.proof: {error}")
            continue
        if hop.proof.tree_size != hop.signed.tree_size or root != hop.signed.root:
            problems.append(f"{where}.signed.root: the record does not hash to the root node {hop.node_id!r} signed")
            continue
        key = trusted.get(hop.node_id, {}).get(hop.signed.kid)
        if key is None:
            problems.append(f"{where}.signed.kid: {hop.signed.kid!r} is not a trusted key of node {hop.node_id!r}")
        elif not _signature_holds(hop.node_id, hop.signed, key, verified):
            problems.append(f"{where}.signed.signature: does not verify with key {hop.signed.kid!r}")
    return problems


def inclusion_proof(envelope: Envelope, index: int) -> Proof:
    """The proof that record ``index`` is in the signed batch, to hand out with that record alone."""
    return _tree(envelope.provider_code, envelope.resource_code, envelope.records).proof(index)


# Shared checks of the codecs: they raise EnvelopeError naming the field, so every wire format refuses the
# same things with the same words.

def check_header(*, batch_id: str, node_id: str, provider_code: str, resource_code: str, consumer_code: str,
                 created_at: dt.datetime) -> None:
    for field, value in (("batch_id", batch_id), ("node_id", node_id)):
        if not isinstance(value, str) or not _HANDLE.fullmatch(value):
            raise EnvelopeError(field, f"{value!r} is not 1-128 of A-Z a-z 0-9 . _ : -")
    for field, value in (("provider_code", provider_code), ("consumer_code", consumer_code)):
        problem = credit_code_problem(value) if isinstance(value, str) else "must be text"
        if problem:
            raise EnvelopeError(field, f"{value!r} is not a 统一社会信用代码: {problem}")
    problem = resource_code_problem(resource_code) if isinstance(resource_code, str) else "must be text"
    if problem:
        raise EnvelopeError("resource_code", f"{resource_code!r}: {problem}")
    if not isinstance(created_at, dt.datetime) or created_at.utcoffset() is None:
        raise EnvelopeError("created_at", "must be a date-time with a time zone")
    offset = created_at.utcoffset()
    if offset is not None and offset % dt.timedelta(minutes=1):
        raise EnvelopeError("created_at", "the UTC offset must be whole minutes (ISO 8601 / xs:dateTime)")


def check_record(record: Record, where: str) -> None:
    if not isinstance(record.id, str) or not _RECORD_ID.fullmatch(record.id):
        raise EnvelopeError(f"{where}.id", f"{record.id!r} is not a record id (1-{MAX_RECORD_ID} of A-Z a-z 0-9 . _ : -)")
    if isinstance(record.sequence, bool) or not isinstance(record.sequence, int) \
            or not 1 <= record.sequence <= MAX_SEQUENCE:
        raise EnvelopeError(f"{where}.sequence", f"{record.sequence!r} is not a whole number from 1 to {MAX_SEQUENCE}")
    if not isinstance(record.operation, Operation):
        raise EnvelopeError(f"{where}.operation", f"{record.operation!r} is not UPSERT or DELETE")
    if not isinstance(record.payload, Mapping):
        raise EnvelopeError(f"{where}.payload", "must be an object of item name → value")
    for name, value in record.payload.items():
        if not isinstance(name, str) or not name or not _is_unicode(name):
            raise EnvelopeError(f"{where}.payload", f"{name!r} is not an item name")
        check_value(value, f"{where}.payload.{name}")


def check_value(value: Any, field: str) -> None:
    """Item values are what JSON carries as scalars: text, a finite number, true/false or null."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if not _is_unicode(value):
            raise EnvelopeError(field, "is not valid Unicode text (it holds a lone surrogate)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EnvelopeError(field, f"{value!r} is not a finite number")
        return
    raise EnvelopeError(field, f"is a {type(value).__name__}; a value is text, a number, true/false or null")


def check_signed(signed: SignedBatch) -> None:
    if isinstance(signed.tree_size, bool) or not isinstance(signed.tree_size, int) \
            or not 0 <= signed.tree_size < 1 << 64:
        raise EnvelopeError("signed.tree_size", f"{signed.tree_size!r} is not a count of records")
    if len(signed.root) != HASH_SIZE:
        raise EnvelopeError("signed.root", f"is {len(signed.root)} bytes; a SHA-256 hash is {HASH_SIZE}")
    for field, value in (("kid", signed.kid), ("algorithm", signed.algorithm)):
        if not isinstance(value, str) or not value:
            raise EnvelopeError(f"signed.{field}", "is missing")
    if not signed.signature:
        raise EnvelopeError("signed.signature", "is missing")


def check_proof(proof: Proof, records: int, signed: SignedBatch) -> None:
    if records != 1:
        raise EnvelopeError("records", f"an envelope with a proof holds exactly one record, not {records}")
    for name, value in (("index", proof.index), ("tree_size", proof.tree_size)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
            raise EnvelopeError(f"proof.{name}", f"{value!r} is not a count of records")
    if proof.tree_size != signed.tree_size:
        raise EnvelopeError("proof.tree_size", f"{proof.tree_size} differs from the signed size {signed.tree_size}")
    if proof.index >= proof.tree_size:
        raise EnvelopeError("proof.index", f"{proof.index} is outside a batch of {proof.tree_size} records")
    if len(proof.path) > 64:
        raise EnvelopeError("proof.path", f"{len(proof.path)} hashes; no batch needs more than 64")
    for position, value in enumerate(proof.path):
        if len(value) != HASH_SIZE:
            raise EnvelopeError(f"proof.path[{position}]", f"is {len(value)} bytes; a SHA-256 hash is {HASH_SIZE}")


def check_envelope(envelope: Envelope) -> Envelope:
    """The envelope itself when every field is one the codecs carry faithfully; else EnvelopeError."""
    check_header(batch_id=envelope.batch_id, node_id=envelope.node_id, provider_code=envelope.provider_code,
                 resource_code=envelope.resource_code, consumer_code=envelope.consumer_code,
                 created_at=envelope.created_at)
    for index, record in enumerate(envelope.records):
        check_record(record, f"records[{index}]")
    check_signed(envelope.signed)
    if envelope.proof is not None:
        check_proof(envelope.proof, len(envelope.records), envelope.signed)
    if envelope.disputed:
        check_disputed(envelope.disputed, envelope.records)
    if envelope.hops:
        if envelope.proof is None:
            raise EnvelopeError("hops", "only a one-record envelope with its proof carries hops")
        if len(envelope.hops) > MAX_HOPS:
            raise EnvelopeError("hops", f"{len(envelope.hops)} hops; at most {MAX_HOPS}")
        for position, hop in enumerate(envelope.hops):
            if not isinstance(hop.node_id, str) or not _HANDLE.fullmatch(hop.node_id):
                raise EnvelopeError(f"hops[{position}].node_id", f"{hop.node_id!r} is not 1-128 of A-Z a-z 0-9 . _ : -")
            if not isinstance(hop.batch_id, str) or not _HANDLE.fullmatch(hop.batch_id):
                raise EnvelopeError(f"hops[{position}].batch_id", f"{hop.batch_id!r} is not 1-128 of A-Z a-z 0-9 . _ : -")
            try:
                check_signed(hop.signed)
                check_proof(hop.proof, 1, hop.signed)
            except EnvelopeError as error:
                raise EnvelopeError(f"hops[{position}].{error.field}", error.reason) from None
    return envelope


def check_disputed(disputed: Sequence[str], records: Sequence[Record]) -> None:
    """The disputed ids are ids of the envelope's records, each once, in record order (so that every
    codec spells one envelope one way and ``decode(encode(e)) == e``)."""
    order = {record.id: index for index, record in enumerate(records)}
    places = []
    for position, record_id in enumerate(disputed):
        if not isinstance(record_id, str) or record_id not in order:
            raise EnvelopeError(f"disputed[{position}]", f"{str(record_id)[:80]!r} is not a record of the envelope")
        places.append(order[record_id])
    if places != sorted(set(places)):
        raise EnvelopeError("disputed", "lists a record twice or out of the records' order")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# JSON as the regional codec and the departmental payload_json field carry it: strict both ways, so that a
# value means one thing (no NaN, no duplicate keys deciding silently which value wins).

class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_dumps(value: Any) -> str:
    """Compact UTF-8 JSON; Chinese text stays readable (not \\u-escaped)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_loads(text: str, field: str) -> Any:
    """Parse JSON strictly; EnvelopeError naming ``field`` when it is not exactly one JSON value."""
    try:
        return json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except _DuplicateKey as duplicate:
        raise EnvelopeError(field, f"the key {duplicate.key!r} appears twice in one object") from None
    except json.JSONDecodeError as error:
        raise EnvelopeError(field, f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
                            ) from None
    except (ValueError, RecursionError) as error:
        raise EnvelopeError(field, f"is not valid JSON: {error}") from None


def check_size(data: bytes, max_bytes: int) -> None:
    if not isinstance(data, bytes | bytearray):
        raise TypeError("decode takes the encoded bytes")
    if len(data) > max_bytes:
        raise EnvelopeError("document", f"is {len(data)} bytes; at most {max_bytes} bytes are accepted")


def parse_created_at(text: str, field: str = "created_at") -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise EnvelopeError(field, f"{text!r} is not an ISO 8601 date-time") from None
    if value.utcoffset() is None:
        raise EnvelopeError(field, f"{text!r} has no time zone")
    return value
