"""The tamper-evident audit trail (全程留痕): a hash chain of entries and checkpoints signed by the node.

Why both: the chain makes any edit, deletion, insertion or reordering of an entry visible at that entry;
a signature over the chain head every N entries or T seconds makes it impossible to rewrite the chain
consistently (recomputing every hash) without the node's private key. Purging old entries keeps the
checkpoint just before the first remaining entry as the signed *anchor* the rest hangs from.

Pure code: the storage and the export file both feed ``verify`` the same shapes, so a database and an
exported file are checked by exactly the same rules, offline, with the node's public keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from security.errors import SecurityError

GENESIS = bytes(32)
"""The previous hash of entry 1."""
EXPORT_FORMAT = "exnode-audit-export/1"
_ENTRY_DOMAIN = b"exnode-audit-entry/1\n"
_CHECKPOINT_DOMAIN = b"exnode-audit-checkpoint/1\n"


def format_time(at: dt.datetime) -> str:
    """UTC, microseconds, 'Z': one spelling, so that hashes do not depend on how a database returns it."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class AuditRecord:
    """What happened, before it is placed in the chain."""

    at: dt.datetime
    request_id: str
    subject: str
    department_code: str
    roles: tuple[str, ...]
    action: str
    target: str
    result: str
    peer: str = ""
    detail: str = ""

    def content(self) -> dict[str, Any]:
        return {
            "at": format_time(self.at), "request_id": self.request_id, "subject": self.subject,
            "department_code": self.department_code, "roles": sorted(self.roles), "action": self.action,
            "target": self.target, "result": self.result, "peer": self.peer, "detail": self.detail,
        }


def entry_hash(previous_hash: bytes, sequence: int, record: AuditRecord) -> bytes:
    """SHA-256 over a domain tag, the previous hash, the sequence number and the canonical JSON content."""
    body = _canonical({"sequence": sequence, **record.content()})
    return hashlib.sha256(_ENTRY_DOMAIN + previous_hash + body).digest()


@dataclass(frozen=True)
class AuditEntry:
    sequence: int
    record: AuditRecord
    previous_hash: bytes
    entry_hash: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"type": "entry", "sequence": self.sequence, **self.record.content(),
                "previous_hash": self.previous_hash.hex(), "entry_hash": self.entry_hash.hex()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        record = AuditRecord(
            at=parse_time(data["at"]), request_id=data["request_id"], subject=data["subject"],
            department_code=data["department_code"], roles=tuple(data["roles"]), action=data["action"],
            target=data["target"], result=data["result"], peer=data["peer"], detail=data["detail"])
        return cls(int(data["sequence"]), record, bytes.fromhex(data["previous_hash"]),
                   bytes.fromhex(data["entry_hash"]))


def chain(records: Iterable[AuditRecord], last_sequence: int, last_hash: bytes) -> list[AuditEntry]:
    """Append records after (last_sequence, last_hash)."""
    out = []
    previous, sequence = last_hash, last_sequence
    for record in records:
        sequence += 1
        digest = entry_hash(previous, sequence, record)
        out.append(AuditEntry(sequence, record, previous, digest))
        previous = digest
    return out


class Signer(Protocol):
    kid: str
    algorithm: str

    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    kid: str
    algorithm: str

    def verify(self, data: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Checkpoint:
    """The node's signature over the chain head at ``sequence``."""

    node_id: str
    sequence: int
    entry_hash: bytes
    at: dt.datetime
    kid: str
    algorithm: str
    signature: bytes

    def message(self) -> bytes:
        return checkpoint_message(self.node_id, self.sequence, self.entry_hash, self.at)

    def to_dict(self, kind: str = "checkpoint") -> dict[str, Any]:
        return {"type": kind, "node_id": self.node_id, "sequence": self.sequence,
                "entry_hash": self.entry_hash.hex(), "at": format_time(self.at), "kid": self.kid,
                "algorithm": self.algorithm, "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(data["node_id"], int(data["sequence"]), bytes.fromhex(data["entry_hash"]), parse_time(data["at"]),
                   data["kid"], data["algorithm"], bytes.fromhex(data["signature"]))


def checkpoint_message(node_id: str, sequence: int, digest: bytes, at: dt.datetime) -> bytes:
    return _CHECKPOINT_DOMAIN + _canonical(
        {"node_id": node_id, "sequence": sequence, "entry_hash": digest.hex(), "at": format_time(at)})


def sign_checkpoint(signer: Signer, node_id: str, sequence: int, digest: bytes, at: dt.datetime) -> Checkpoint:
    signature = signer.sign(checkpoint_message(node_id, sequence, digest, at))
    return Checkpoint(node_id, sequence, digest, at, signer.kid, signer.algorithm, signature)


@dataclass
class VerifyResult:
    ok: bool = True
    entries_checked: int = 0
    checkpoints_checked: int = 0
    first_broken_sequence: int = 0
    problem: str = ""
    unsigned_tail: int = 0
    """Entries after the last checkpoint: chained but not yet signed."""
    first_sequence: int = 0
    last_sequence: int = 0

    def fail(self, sequence: int, problem: str) -> VerifyResult:
        self.ok, self.first_broken_sequence, self.problem = False, sequence, problem
        return self


@dataclass
class _Walk:
    keys: Mapping[str, Verifier]
    node_id: str
    result: VerifyResult = field(default_factory=VerifyResult)

    def checkpoint_problem(self, checkpoint: Checkpoint) -> str:
        if checkpoint.node_id != self.node_id:
            return f"checkpoint {checkpoint.sequence} is signed for node {checkpoint.node_id!r}, not {self.node_id!r}"
        key = self.keys.get(checkpoint.kid)
        if key is None:
            return f"checkpoint {checkpoint.sequence} is signed with key {checkpoint.kid!r}, which is not a node key"
        if not key.verify(checkpoint.message(), checkpoint.signature):
            return f"checkpoint {checkpoint.sequence}: the signature does not verify with key {checkpoint.kid}"
        return ""


def verify(
    entries: Iterable[AuditEntry], checkpoints: Iterable[Checkpoint], *, keys: Mapping[str, Verifier], node_id: str,
) -> VerifyResult:
    """Check the chain entry by entry and every checkpoint; stop at the first problem and name it.

    ``entries`` in sequence order (streamed: a large trail is never held in memory); ``checkpoints`` all
    the retained ones, the oldest being the anchor when older entries were purged.
    """
    walk = _Walk(keys, node_id)
    result = walk.result
    signed = sorted(checkpoints, key=lambda c: c.sequence)
    for checkpoint in signed:
        problem = walk.checkpoint_problem(checkpoint)
        if problem:
            return result.fail(checkpoint.sequence, problem)
        result.checkpoints_checked += 1
    by_sequence = {c.sequence: c for c in signed}
    previous_sequence, previous_hash = 0, GENESIS
    last_signed = 0
    iterator = iter(entries)
    first = next(iterator, None)
    if first is None:
        if signed and signed[-1].sequence > 0:
            return result.fail(signed[-1].sequence, f"the trail is empty but checkpoint {signed[-1].sequence} "
                                                    "signs entries: they were deleted")
        return result
    if first.sequence != 1:
        anchor = by_sequence.get(first.sequence - 1)
        if anchor is None:
            return result.fail(first.sequence, f"the trail starts at entry {first.sequence} and no signed checkpoint "
                                               f"anchors it: entries before {first.sequence} were deleted")
        previous_sequence, previous_hash, last_signed = anchor.sequence, anchor.entry_hash, anchor.sequence
    result.first_sequence = first.sequence
    for entry in _chain_with(first, iterator):
        sequence = entry.sequence
        if sequence != previous_sequence + 1:
            if sequence <= previous_sequence:
                return result.fail(sequence, f"entry {sequence} comes after entry {previous_sequence}: entries were "
                                             "reordered or duplicated")
            return result.fail(previous_sequence + 1, f"entry {previous_sequence + 1} is missing (after entry "
                                                      f"{previous_sequence} comes {sequence}): it was deleted")
        if entry.previous_hash != previous_hash:
            return result.fail(sequence, f"entry {sequence} does not link to entry {previous_sequence} (its "
                                         "previous_hash differs): an entry was inserted, deleted or reordered here")
        if entry_hash(previous_hash, sequence, entry.record) != entry.entry_hash:
            return result.fail(sequence, f"entry {sequence} was altered: its content does not match its hash")
        checkpoint = by_sequence.get(sequence)
        if checkpoint is not None:
            if checkpoint.entry_hash != entry.entry_hash:
                return result.fail(
                    last_signed + 1, f"entries {last_signed + 1}..{sequence} were rewritten: the chain no longer "
                                     f"reaches the hash the node signed in checkpoint {sequence}")
            last_signed = sequence
        previous_sequence, previous_hash = sequence, entry.entry_hash
        result.entries_checked += 1
    result.last_sequence = previous_sequence
    later = [c for c in signed if c.sequence > previous_sequence]
    if later:
        return result.fail(previous_sequence + 1, f"checkpoint {later[0].sequence} signs entries up to "
                                                  f"{later[0].sequence} but the trail ends at {previous_sequence}: "
                                                  "entries were deleted from the end")
    result.unsigned_tail = previous_sequence - last_signed
    return result


def _chain_with(first: AuditEntry, rest: Iterable[AuditEntry]) -> Iterable[AuditEntry]:
    yield first
    yield from rest


# -- export files ----------------------------------------------------------------------------------------

def export_header(node_id: str, public_keys: Iterable[Mapping[str, Any]], exported_at: dt.datetime) -> dict[str, Any]:
    return {"type": "header", "format": EXPORT_FORMAT, "node_id": node_id, "exported_at": format_time(exported_at),
            "public_keys": list(public_keys)}


class ExportFileError(SecurityError, ValueError):
    """The export file is not one: the message names the line."""


def read_export(lines: Iterable[str]) -> tuple[dict[str, Any], list[AuditEntry], list[Checkpoint]]:
    """Parse an export (JSON lines). Structure problems raise ExportFileError naming the line; content
    problems are left to ``verify``."""
    header: dict[str, Any] | None = None
    entries: list[AuditEntry] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data["type"]
            if kind == "header":
                if data.get("format") != EXPORT_FORMAT:
                    raise ExportFileError(f"line {number}: not an {EXPORT_FORMAT} file")
                header = data
            elif kind == "entry":
                entries.append(AuditEntry.from_dict(data))
            elif kind in ("checkpoint", "anchor"):
                checkpoints.append(Checkpoint.from_dict(data))
            else:
                raise ExportFileError(f"line {number}: unknown line type {kind!r}")
        except ExportFileError:
            raise
        except (ValueError, KeyError, TypeError) as error:
            raise ExportFileError(f"line {number}: not an audit export line ({type(error).__name__}: {error})") from None
    if header is None:
        raise ExportFileError(f"no header line: not an {EXPORT_FORMAT} file")
    return header, entries, checkpoints
