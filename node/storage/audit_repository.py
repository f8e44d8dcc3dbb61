"""Audit trail persistence: append under the chain-head lock, query, stream for verification, purge."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from node.storage.tables import audit_checkpoints, audit_entries, audit_head
from security.audit import AuditEntry, AuditRecord, Checkpoint


@dataclass(frozen=True)
class Head:
    last_sequence: int
    last_hash: bytes
    last_checkpoint_sequence: int
    last_checkpoint_at: dt.datetime | None


@dataclass(frozen=True)
class AuditFilter:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    subject: str = ""
    department_code: str = ""
    action: str = ""
    target: str = ""
    result: str = ""


def _entry(row: Row) -> AuditEntry:
    record = AuditRecord(
        at=row.at, request_id=row.request_id, subject=row.subject, department_code=row.department_code,
        roles=tuple(r for r in row.roles.split(",") if r), action=row.action, target=row.target, result=row.result,
        peer=row.peer, detail=row.detail)
    return AuditEntry(row.sequence, record, bytes.fromhex(row.previous_hash), bytes.fromhex(row.entry_hash))


def _checkpoint(row: Row) -> Checkpoint:
    return Checkpoint(row.node_id, row.sequence, bytes.fromhex(row.entry_hash), row.at, row.kid, row.algorithm,
                      bytes.fromhex(row.signature))


class AuditRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def lock_head(self) -> Head:
        """The chain head, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's writer lock
        is already held since BEGIN IMMEDIATE), so concurrent writers append one after the other."""
        row = self.connection.execute(select(audit_head).where(audit_head.c.id == 1).with_for_update()).one()
        return Head(row.last_sequence, bytes.fromhex(row.last_hash), row.last_checkpoint_sequence,
                    row.last_checkpoint_at)

    def head(self) -> Head:
        row = self.connection.execute(select(audit_head).where(audit_head.c.id == 1)).one()
        return Head(row.last_sequence, bytes.fromhex(row.last_hash), row.last_checkpoint_sequence,
                    row.last_checkpoint_at)

    def append(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        self.connection.execute(insert(audit_entries), [
            {"sequence": e.sequence, "at": e.record.at, "request_id": e.record.request_id,
             "subject": e.record.subject, "department_code": e.record.department_code,
             "roles": ",".join(sorted(e.record.roles)), "action": e.record.action, "target": e.record.target,
             "result": e.record.result, "peer": e.record.peer, "detail": e.record.detail,
             "previous_hash": e.previous_hash.hex(), "entry_hash": e.entry_hash.hex()}
            for e in entries
        ])

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.connection.execute(insert(audit_checkpoints).values(
            sequence=checkpoint.sequence, node_id=checkpoint.node_id, entry_hash=checkpoint.entry_hash.hex(),
            at=checkpoint.at, kid=checkpoint.kid, algorithm=checkpoint.algorithm, signature=checkpoint.signature.hex()))

    def set_head(self, head: Head) -> None:
        self.connection.execute(update(audit_head).where(audit_head.c.id == 1).values(
            last_sequence=head.last_sequence, last_hash=head.last_hash.hex(),
            last_checkpoint_sequence=head.last_checkpoint_sequence, last_checkpoint_at=head.last_checkpoint_at))

    def query(self, flt: AuditFilter, *, before_sequence: int, limit: int) -> list[AuditEntry]:
        """Newest first; ``before_sequence`` 0 starts at the newest."""
        e = audit_entries.c
        conditions = []
        if before_sequence:
            conditions.append(e.sequence < before_sequence)
        times = []
        if flt.since:
            times.append(e.at >= flt.since)
        if flt.until:
            times.append(e.at < flt.until)
        if times:
            # The entries of a time range lie between the smallest and the largest sequence of that range
            # (exactly: min and max over the same rows), read from ix_audit_entries_at. Bounding the
            # sequence too lets the newest-first read start at the range's end instead of walking the
            # whole trail back from its head looking for the range (seconds at 10^7 entries).
            low, high = self.connection.execute(select(func.min(e.sequence), func.max(e.sequence)).where(*times)).one()
            if low is None:
                return []
            conditions.extend((*times, e.sequence >= low, e.sequence <= high))
        for column, value in ((e.subject, flt.subject), (e.department_code, flt.department_code),
                              (e.action, flt.action), (e.target, flt.target), (e.result, flt.result)):
            if value:
                conditions.append(column == value)
        rows = self.connection.execute(
            select(audit_entries).where(*conditions).order_by(e.sequence.desc()).limit(limit))
        return [_entry(row) for row in rows]

    def entries(self, first: int = 1, last: int | None = None) -> Iterator[AuditEntry]:
        """Entries in sequence order, streamed in chunks (a large trail is never held in memory)."""
        e = audit_entries.c
        conditions = [e.sequence >= first]
        if last is not None:
            conditions.append(e.sequence <= last)
        result = self.connection.execution_options(yield_per=2000).execute(
            select(audit_entries).where(*conditions).order_by(e.sequence))
        for row in result:
            yield _entry(row)

    def checkpoints(self, first: int = 0, last: int | None = None) -> list[Checkpoint]:
        c = audit_checkpoints.c
        conditions = [c.sequence >= first]
        if last is not None:
            conditions.append(c.sequence <= last)
        return [_checkpoint(row) for row in self.connection.execute(
            select(audit_checkpoints).where(*conditions).order_by(c.sequence))]

    def first_sequence(self) -> int | None:
        """The oldest remaining entry (after a purge, the one just after the anchor checkpoint)."""
        return self.connection.execute(select(func.min(audit_entries.c.sequence))).scalar()

    def first_sequence_at_or_after(self, at: dt.datetime) -> int | None:
        return self.connection.execute(
            select(func.min(audit_entries.c.sequence)).where(audit_entries.c.at >= at)).scalar()

    def last_sequence_before(self, at: dt.datetime) -> int | None:
        return self.connection.execute(
            select(func.max(audit_entries.c.sequence)).where(audit_entries.c.at < at)).scalar()

    def checkpoint_at_or_before(self, sequence: int) -> Checkpoint | None:
        row = self.connection.execute(
            select(audit_checkpoints).where(audit_checkpoints.c.sequence <= sequence)
            .order_by(audit_checkpoints.c.sequence.desc()).limit(1)).first()
        return _checkpoint(row) if row else None

    def newest_checkpoint_before(self, at: dt.datetime, below_sequence: int | None = None) -> Checkpoint | None:
        conditions = [audit_checkpoints.c.at < at]
        if below_sequence is not None:
            conditions.append(audit_checkpoints.c.sequence < below_sequence)
        row = self.connection.execute(
            select(audit_checkpoints).where(*conditions)
            .order_by(audit_checkpoints.c.sequence.desc()).limit(1)).first()
        return _checkpoint(row) if row else None

    def purge_through(self, anchor_sequence: int) -> int:
        """Delete entries up to and including the anchor's, and checkpoints before it; the anchor stays."""
        deleted = self.connection.execute(
            delete(audit_entries).where(audit_entries.c.sequence <= anchor_sequence)).rowcount
        self.connection.execute(delete(audit_checkpoints).where(audit_checkpoints.c.sequence < anchor_sequence))
        return deleted

    def count(self) -> int:
        return self.connection.execute(select(func.count()).select_from(audit_entries)).scalar_one()
