"""The files a nightly pull leaves behind and their offline check (``exnode pull verify``, and the client's
re-check of batches staged by an interrupted run).

A published pull directory holds ``batch-NNNNNN.jsonl`` (one canonical record per line, numbered from 0 in
pull order) and ``manifest.json``: every batch's signed fields (index, cursors, count, root, key id,
signature) and the node's manifest. A pull that broke off and was resumed arrived as several streams; the
node numbers batches from 0 in each stream and signs a manifest over the last stream only. The whole pull
is still covered: every batch carries the node's signature over its own records *and* the cursors before
and after it, the batches follow one another from ``since`` without a hole, and the manifest signs the
final stream's range, counts and root up to the next cursor. ``verify_published`` checks exactly that,
from the files and the node's public keys alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security import merkle
from security.keys import PublicKey
from security.pull import MANIFEST_VERSION, CursorError, batch_signing_input, manifest_signing_input, parse
from security.timestamps import Evidence, TimestampInvalid, check_evidence, signed_digest

MANIFEST_FILE = "manifest.json"
TIMESTAMP_FILE = "timestamp.json"
"""The RFC 3161 evidence of the manifest (``exnode pull stamp``), when the pull has it: optional."""
BATCH_NAME = re.compile(r"batch-\d{6}\.jsonl")


class EvidenceProblem(Exception):
    """What does not verify, in one line naming the batch or file (``exnode pull verify`` exit 1)."""


def batch_file_name(number: int) -> str:
    """The file of the pull's ``number``-th batch, counted from 0 over the whole pull."""
    return f"batch-{number:06d}.jsonl"


@dataclass(frozen=True)
class BatchEntry:
    """One batch as ``state.json`` and ``manifest.json`` record it: the fields the node signed."""

    file: str
    index: int
    from_cursor: str
    to_cursor: str
    record_count: int
    root: bytes
    key_id: str
    signature: bytes
    disputed: tuple[int, ...] = ()
    """Lines (from 0) of records the node marked disputed (校核纠错: an open objection); not signed."""

    def to_dict(self) -> dict[str, Any]:
        out = {"file": self.file, "index": self.index, "from_cursor": self.from_cursor, "to_cursor": self.to_cursor,
               "record_count": self.record_count, "merkle_root": self.root.hex(), "key_id": self.key_id,
               "signature": self.signature.hex()}
        if self.disputed:
            out["disputed"] = list(self.disputed)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> BatchEntry:
        """Raises ValueError naming the field that is missing or of the wrong kind."""
        if not isinstance(data, Mapping):
            raise ValueError("is not an object")
        values: dict[str, Any] = {}
        for field, kind in (("file", str), ("index", int), ("from_cursor", str), ("to_cursor", str),
                            ("record_count", int), ("merkle_root", str), ("key_id", str), ("signature", str)):
            value = data.get(field)
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
                raise ValueError(f"field {field!r} is missing or not a {'count' if kind is int else 'string'}")
            values[field] = value
        if not BATCH_NAME.fullmatch(values["file"]):
            raise ValueError(f"file {values['file']!r} is not a batch file name (batch-NNNNNN.jsonl)")
        try:
            root, signature = bytes.fromhex(values["merkle_root"]), bytes.fromhex(values["signature"])
        except ValueError:
            raise ValueError("merkle_root or signature is not hex") from None
        if len(root) != merkle.HASH_SIZE:
            raise ValueError(f"merkle_root is {len(root)} bytes, not {merkle.HASH_SIZE}")
        disputed = data.get("disputed", [])
        if not isinstance(disputed, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < values["record_count"] for i in disputed):
            raise ValueError("field 'disputed' is not a list of record lines of the batch")
        return cls(values["file"], values["index"], values["from_cursor"], values["to_cursor"],
                   values["record_count"], root, values["key_id"], signature, tuple(disputed))


def encode_records(records: Sequence[bytes]) -> list[bytes]:
    """The chunks of a batch file: each record and a newline (canonical JSON holds no raw newline)."""
    return [b"\n".join(records), b"\n"] if records else []


def decode_records(data: bytes) -> list[bytes]:
    """The exact inverse of ``encode_records``; a file that is not its output is ValueError."""
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise ValueError("does not end with a newline (truncated?)")
    return data[:-1].split(b"\n")


def same_cursor(a: str, b: str) -> bool:
    """Whether two cursors name the same place: equal text, or the same signed body spelled differently
    (base64 leaves some freedom in the last character)."""
    if a == b:
        return True
    try:
        return parse(a)[1:] == parse(b)[1:]
    except CursorError:
        return False


def starts_the_pull(cursor: str, since: str, node_id: str, platform: str) -> bool:
    """Whether ``cursor`` is where a pull ``since`` begins: ``since`` itself, or for a pull from the
    beginning ("") position 0 of this node and platform."""
    if since:
        return same_cursor(cursor, since)
    try:
        place = parse(cursor)[0]
    except CursorError:
        return False
    return (place.node_id, place.platform, place.position) == (node_id, platform, 0)


def check_signature(keys: Mapping[str, PublicKey], kid: str, message: bytes, signature: bytes, node_id: str
                    ) -> str | None:
    """Why the signature fails (None: it verifies)."""
    key = keys.get(kid)
    if key is None:
        return f"signed with key {kid!r}, which node {node_id!r} does not publish"
    if not key.verify(message, signature):
        return f"the signature does not verify with key {kid} of node {node_id!r}"
    return None


def check_link(entries: Sequence[BatchEntry], number: int, since: str, node_id: str, platform: str) -> str | None:
    """Why batch ``number`` does not follow the batches before it (None: it does). A batch starts where the
    previous one ended; its index is the next in its stream, or 0 where a resumed stream begins."""
    entry = entries[number]
    if number == 0:
        if entry.index != 0:
            return f"is the first batch of the pull but has index {entry.index} (batches before it are missing)"
        if not starts_the_pull(entry.from_cursor, since, node_id, platform):
            return "does not start where the pull started (its since cursor)"
        return None
    previous = entries[number - 1]
    if entry.file <= previous.file:
        return f"file {entry.file} does not come after {previous.file}"
    if entry.from_cursor != previous.to_cursor:
        return f"does not start where batch {number - 1} ended (a hole, or batches out of order)"
    if entry.index not in (0, previous.index + 1):
        return f"has index {entry.index} after index {previous.index} (a batch of its stream is missing)"
    return None


def check_batch_file(directory: Path, entry: BatchEntry, node_id: str, platform: str,
                     keys: Mapping[str, PublicKey]) -> tuple[str | None, list[bytes]]:
    """(why the file does not match its signed entry or None, its records' leaf hashes)."""
    try:
        data = (directory / entry.file).read_bytes()
    except FileNotFoundError:
        return "is missing", []
    except OSError as error:
        return f"cannot be read ({error.strerror})", []
    try:
        records = decode_records(data)
    except ValueError as error:
        return str(error), []
    if len(records) != entry.record_count:
        return f"holds {len(records)} records, its signature is for {entry.record_count}", []
    leaf_hashes = [merkle.leaf_hash(record) for record in records]
    root = merkle.root_from_leaf_hashes(leaf_hashes)
    if root != entry.root:
        return (f"the records hash to {root.hex()}, the signed root is {entry.root.hex()} "
                "(a record was changed, added, removed or reordered)"), []
    problem = check_signature(keys, entry.key_id, batch_signing_input(
        node_id=node_id, platform=platform, index=entry.index, from_cursor=entry.from_cursor,
        to_cursor=entry.to_cursor, record_count=entry.record_count, root=entry.root), entry.signature, node_id)
    return problem, leaf_hashes


def describe(number: int, entry: BatchEntry | None) -> str:
    return f"batch {number} ({entry.file})" if entry is not None else f"batch {number}"


@dataclass(frozen=True)
class Manifest:
    """The node's signed manifest of the last stream of a pull."""

    from_cursor: str
    to_cursor: str
    record_count: int
    batch_count: int
    root: bytes
    until_day: str
    key_id: str
    signature: bytes
    signed_at: str = ""
    """When the node signed it (version 2; "" in a version 1 manifest, which did not sign its time)."""
    version: int = 1

    def signing_input(self, node_id: str, platform: str) -> bytes:
        """What the node signed (``security.pull.manifest_signing_input`` of this manifest's version)."""
        return manifest_signing_input(
            node_id=node_id, platform=platform, from_cursor=self.from_cursor, to_cursor=self.to_cursor,
            record_count=self.record_count, batch_count=self.batch_count, root=self.root, until_day=self.until_day,
            signed_at=self.signed_at if self.version >= 2 else "")

    def signed_time(self) -> dt.datetime | None:
        """``signed_at`` as a time (None for a version 1 manifest); ValueError when it is not ISO 8601 UTC."""
        if self.version < 2:
            return None
        at = dt.datetime.fromisoformat(self.signed_at)
        if at.tzinfo is None:
            raise ValueError(f"signed_at {self.signed_at!r} has no time zone")
        return at

    def to_dict(self) -> dict[str, Any]:
        out = {"from_cursor": self.from_cursor, "to_cursor": self.to_cursor, "record_count": self.record_count,
               "batch_count": self.batch_count, "merkle_root": self.root.hex(), "until_day": self.until_day,
               "key_id": self.key_id, "signature": self.signature.hex()}
        if self.version >= 2:
            out.update({"version": self.version, "signed_at": self.signed_at})
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """A manifest of manifest.json: without ``version``, one published before manifests signed their time."""
        if not isinstance(data, Mapping):
            raise ValueError("is not an object")
        try:
            manifest = cls(str(data["from_cursor"]), str(data["to_cursor"]), int(data["record_count"]),
                           int(data["batch_count"]), bytes.fromhex(data["merkle_root"]), str(data["until_day"]),
                           str(data["key_id"]), bytes.fromhex(data["signature"]), str(data.get("signed_at", "")),
                           int(data.get("version", 1)))
            manifest.signed_time()
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"is malformed ({type(error).__name__}: {error})") from None
        if len(manifest.root) != merkle.HASH_SIZE or min(manifest.record_count, manifest.batch_count) < 0:
            raise ValueError("is malformed (root or counts)")
        if manifest.version not in (1, MANIFEST_VERSION):
            raise ValueError(f"is of version {manifest.version}; this client reads versions 1 and {MANIFEST_VERSION}")
        return manifest


def check_manifest_covers(entries: Sequence[BatchEntry], manifest: Manifest, since: str, node_id: str,
                          platform: str) -> str | None:
    """Why the manifest does not cover the end of the chain (None: it does): it must sign exactly the last
    ``batch_count`` batches (indexes 0, 1, … of the final stream), starting where the batches before them
    ended. The root is checked by the caller, which holds the records."""
    count = manifest.batch_count
    if count > len(entries):
        return f"manifest: covers {count} batches, the pull holds {len(entries)}"
    final = entries[len(entries) - count:]
    if [e.index for e in final] != list(range(count)):
        return (f"manifest: covers the last {count} batches, whose indexes are {[e.index for e in final]} "
                "(a batch of the final stream is missing or extra)")
    if count:
        start_ok = same_cursor(final[0].from_cursor, manifest.from_cursor)
    elif entries:
        start_ok = same_cursor(entries[-1].to_cursor, manifest.from_cursor)
    else:
        start_ok = starts_the_pull(manifest.from_cursor, since, node_id, platform)
    if not start_ok:
        return "manifest: its range does not start where its batches (or the batches before them) start"
    records = sum(e.record_count for e in final)
    if records != manifest.record_count:
        return f"manifest: says {manifest.record_count} records, its {count} batches hold {records}"
    return None


@dataclass(frozen=True)
class VerifiedPull:
    directory: Path
    node_id: str
    platform: str
    since: str
    next_cursor: str
    records: int
    batches: int
    streams: int


def _document(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvidenceProblem(f"{MANIFEST_FILE} is missing: {directory} is not a published pull") from None
    except (OSError, ValueError) as error:
        raise EvidenceProblem(f"{MANIFEST_FILE} is unreadable ({error})") from None
    if not isinstance(document, dict):
        raise EvidenceProblem(f"{MANIFEST_FILE} is not a JSON object")
    return document


def _entries(document: Mapping[str, Any]) -> Iterator[BatchEntry]:
    batches = document.get("batches")
    if not isinstance(batches, list):
        raise EvidenceProblem(f"{MANIFEST_FILE}: 'batches' is missing or not a list")
    for number, raw in enumerate(batches):
        try:
            yield BatchEntry.from_dict(raw)
        except ValueError as error:
            raise EvidenceProblem(f"{MANIFEST_FILE}: batch {number}: {error}") from None


def verify_published(directory: Path, node_id: str, keys: Mapping[str, PublicKey]) -> VerifiedPull:
    """Re-verify a published pull offline; raises EvidenceProblem naming the first thing that fails."""
    if not directory.is_dir():
        raise EvidenceProblem(f"{directory} is not a directory")
    document = _document(directory)
    fields = {name: document.get(name) for name in ("node", "platform", "since", "next_cursor")}
    for name, value in fields.items():
        if not isinstance(value, str):
            raise EvidenceProblem(f"{MANIFEST_FILE}: {name!r} is missing or not a string")
    if fields["node"] != node_id:
        raise EvidenceProblem(f"{MANIFEST_FILE}: pulled from node {fields['node']!r}; the keys are node {node_id!r}'s")
    platform, since = str(fields["platform"]), str(fields["since"])
    entries = list(_entries(document))
    try:
        manifest = Manifest.from_dict(document.get("manifest"))
    except ValueError as error:
        raise EvidenceProblem(f"{MANIFEST_FILE}: manifest {error}") from None
    expected = {MANIFEST_FILE, TIMESTAMP_FILE, *(e.file for e in entries)}
    if len(expected) != len(entries) + 2:
        raise EvidenceProblem(f"{MANIFEST_FILE}: two batches name the same file")
    for path in sorted(directory.iterdir()):
        if path.name not in expected:
            raise EvidenceProblem(f"{path.name} is not part of the pull (no batch of {MANIFEST_FILE} names it)")
    final_start = len(entries) - manifest.batch_count
    accumulator = merkle.RootAccumulator()
    for number, entry in enumerate(entries):
        problem = check_link(entries, number, since, node_id, platform)
        if problem is None:
            problem, leaf_hashes = check_batch_file(directory, entry, node_id, platform, keys)
        if problem is not None:
            raise EvidenceProblem(f"{describe(number, entry)}: {problem}")
        if number >= final_start:
            accumulator.add_leaf_hashes(leaf_hashes, entry.root)
    problem = check_manifest_covers(entries, manifest, since, node_id, platform)
    if problem is not None:
        raise EvidenceProblem(problem)
    if accumulator.root != manifest.root:
        raise EvidenceProblem(f"manifest: the records of its batches hash to {accumulator.root.hex()}, the manifest "
                              f"says {manifest.root.hex()}")
    problem = check_signature(keys, manifest.key_id, manifest.signing_input(node_id, platform), manifest.signature,
                              node_id)
    if problem is not None:
        raise EvidenceProblem(f"manifest: {problem}")
    if fields["next_cursor"] != manifest.to_cursor:
        raise EvidenceProblem(f"{MANIFEST_FILE}: next_cursor is not the manifest's to_cursor")
    records = sum(e.record_count for e in entries)
    if document.get("record_count") != records:
        raise EvidenceProblem(f"{MANIFEST_FILE}: says {document.get('record_count')} records, its batches hold "
                              f"{records}")
    streams = sum(1 for e in entries[:final_start] if e.index == 0) + 1
    return VerifiedPull(directory, node_id, platform, since, manifest.to_cursor, records, len(entries), streams)


def _manifest(directory: Path) -> tuple[dict[str, Any], Manifest]:
    document = _document(directory)
    try:
        return document, Manifest.from_dict(document.get("manifest"))
    except ValueError as error:
        raise EvidenceProblem(f"{MANIFEST_FILE}: manifest {error}") from None


def manifest_digest(directory: Path) -> bytes:
    """What the manifest's trusted timestamp covers: SHA-256 of its signed input and signature
    (``security.timestamps.signed_digest``), from ``manifest.json``."""
    document, manifest = _manifest(directory)
    return signed_digest(manifest.signing_input(str(document.get("node", "")), str(document.get("platform", ""))),
                         manifest.signature)


def check_timestamp(directory: Path, roots: Sequence[Any]) -> dt.datetime:
    """The time the TSA vouches for the pull's manifest; EvidenceProblem naming what does not hold: no
    timestamp.json, evidence of another statement (a replayed token), the token's signature, the TSA's
    chain to ``roots``, the message imprint through the inclusion proof."""
    path = directory / TIMESTAMP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvidenceProblem(f"{TIMESTAMP_FILE}: the pull has no timestamp (exnode pull stamp DIR adds it once the "
                              "node has it)") from None
    except (OSError, ValueError) as error:
        raise EvidenceProblem(f"{TIMESTAMP_FILE}: {error}") from None
    signed_at = _manifest(directory)[1].signed_time()  # a token dated before it was replayed (version 2)
    try:
        return check_evidence(Evidence.from_dict(data, TIMESTAMP_FILE), manifest_digest(directory), roots,
                              not_before=signed_at, what=TIMESTAMP_FILE)
    except TimestampInvalid as error:
        raise EvidenceProblem(str(error)) from None
