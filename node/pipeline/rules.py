"""The ingest rules that need nothing but the batch and what is stored: which records are new, which
repeat (same id, same content: a duplicate, changing nothing) and which conflict (same id, other content),
and sequence order. Pure functions: tests/unit/test_ingest_rules.py holds them, with an in-memory unit of
work, in milliseconds; the pipeline, gRPC ingest, the inbound queue and the tiers all go through them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from catalog.errors import FieldProblem
from catalog.records import Record


@dataclass(frozen=True)
class Sorted:
    fresh: list[tuple[Record, bytes]]
    """Records not stored yet, with their content hash, in batch order (the first of repeats in a batch)."""
    duplicates: int
    conflicts: list[tuple[int, Record]]
    """(index in the batch, record) of ids already received with other content."""


def sort_fresh(records: Sequence[Record], hashes: Sequence[bytes], stored: Mapping[str, str]) -> Sorted:
    """Split a batch against the content hashes (hex) already stored for its record ids."""
    fresh: list[tuple[Record, bytes]] = []
    seen: dict[str, str] = {}
    duplicates = 0
    conflicts: list[tuple[int, Record]] = []
    for index, (record, digest) in enumerate(zip(records, hashes, strict=True)):
        known = stored.get(record.id) or seen.get(record.id)
        if known is not None:
            if known != digest.hex():
                conflicts.append((index, record))
            duplicates += 1
            continue
        seen[record.id] = digest.hex()
        fresh.append((record, digest))
    return Sorted(fresh, duplicates, conflicts)


def conflict_problems(conflicts: Sequence[tuple[int, Record]]) -> list[FieldProblem]:
    return [FieldProblem(f"records[{index}].id", f"{record.id} was already received with other content")
            for index, record in conflicts]


def sequence_check(last: int, fresh: Sequence[Record]) -> tuple[list[str], list[FieldProblem]]:
    """Sequences must rise above what was stored; gaps are accepted and reported (a provider may skip
    numbers it never sends), going backwards is refused."""
    gaps: list[str] = []
    problems: list[FieldProblem] = []
    expected = last + 1
    for index, record in enumerate(sorted(fresh, key=lambda r: r.sequence)):
        if record.sequence < expected:
            problems.append(FieldProblem(f"records[{index}].sequence", f"{record.sequence} is not after the last "
                                                                     f"stored sequence {expected - 1}"))
            continue
        if record.sequence > expected:
            gaps.append(f"{expected}-{record.sequence - 1}" if record.sequence - 1 > expected else str(expected))
        expected = record.sequence + 1
    return gaps, problems
