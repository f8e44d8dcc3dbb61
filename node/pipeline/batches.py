"""What travels through the pipeline: a provider's signed batch as it arrives, as it stands after the
checks, and what its store answers."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from catalog.records import Record, canonical_record
from security import merkle


@dataclass(frozen=True)
class Limits:
    max_records: int = 5000
    max_record_bytes: int = 64 * 1024
    max_batch_bytes: int = 8 * 1024 * 1024
    max_outbox_rows: int = 0
    """Undelivered outbox rows over which Ingest refuses (UNAVAILABLE) instead of growing without limit; 0: none."""


@dataclass(frozen=True)
class IncomingBatch:
    batch_id: str
    provider_code: str
    resource_code: str
    records: tuple[Record, ...]
    merkle_root: bytes
    kid: str
    signature: bytes
    payload_sizes: tuple[int, ...] | None = None
    """Bytes of each payload as the provider sent it (gRPC); None: measured as compact JSON."""


@dataclass(frozen=True)
class PreparedOutbox:
    """The outbox rows of every record of a batch, computed before the write transaction (masking,
    sealing and encoding are most of the ingest's work, and SQLite has one writer at a time). Used only if
    the subscribers and grants are still ``targets`` and every record turns out fresh; else recomputed."""

    targets: tuple
    rows: list[dict]


@dataclass(frozen=True)
class CheckedBatch:
    """A batch that passed every check that needs no write (``Ingest.check``): its records carry their
    canonical payloads, ``hashes`` are their content hashes."""

    batch: IncomingBatch
    hashes: tuple[bytes, ...]
    now: dt.datetime
    outbox: PreparedOutbox | None = None


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    accepted: int
    duplicates: int
    gaps: tuple[str, ...]
    subscribers: int


def batch_leaves(provider_code: str, resource_code: str, records: Sequence[Record]) -> list[bytes]:
    """The Merkle leaves of a batch: each record's canonical form (``catalog.records.canonical_record``)."""
    return [canonical_record(provider_code, resource_code, r) for r in records]


def new_batch_id() -> str:
    return uuid.uuid4().hex


def provider_batch(provider_code: str, resource_code: str, records: Sequence[Record],
                   signer: merkle.BatchSigner, *, batch_id: str | None = None) -> IncomingBatch:
    """What a provider sends: the records, their Merkle root and its signature (used by tests, the bench
    and the reference client)."""
    tree = merkle.MerkleTree.from_leaves(batch_leaves(provider_code, resource_code, records))
    signature = signer.sign(merkle.SignedBatch.signing_input(tree.size, tree.root))
    return IncomingBatch(batch_id or new_batch_id(), provider_code, resource_code, tuple(records), tree.root,
                         signer.kid, signature)
