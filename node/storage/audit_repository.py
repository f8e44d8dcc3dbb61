"""Audit trail persistence: append under the chain-head lock, query, stream for verification, purge."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Dialect, Row

from node.storage.tables import audit_checkpoints, audit_entries, audit_head, audit_verifications
from security.audit import AuditEntry, AuditRecord, Checkpoint, VerifyResult

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_statements: dict[tuple[str, str], tuple[str, list[Callable[[Any], Any] | None]]] = {}


def _raw_statement(dialect: Dialect, key: str, table: Table, build: Callable[[str], str],
                   columns: Sequence[str]) -> tuple[str, list[Callable[[Any], Any] | None]]:
    """The driver's SQL for ``key`` (built once per dialect) and the bind processors of its parameters'
    columns, in order (the same conversions SQLAlchemy applies: UTC datetimes, SQLite's datetime text)."""
    cached = _statements.get((dialect.name, key))
    if cached is None:
        placeholder = _PLACEHOLDER[dialect.paramstyle]
        processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
        cached = _statements[(dialect.name, key)] = (build(placeholder), processors)
    return cached


def _bound(processors: list[Callable[[Any], Any] | None], values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(value if process is None else process(value) for process, value in zip(processors, values, strict=True))


_ENTRY_COLUMNS = ("sequence", "at", "request_id", "subject", "department_code", "roles", "action", "target",
                  "result", "peer", "detail", "previous_hash", "entry_hash")
_ROWS_PER_INSERT = 64
"""Rows per INSERT statement: 13 parameters a row stays far below both databases' limits, and the distinct
statements (one per row count) stay few enough for the drivers' statement caches."""
_HEAD_COLUMNS = ("last_sequence", "last_hash", "last_checkpoint_sequence", "last_checkpoint_at",
                 "last_sequence", "last_hash", "last_checkpoint_sequence")


def _insert_entries(placeholder: str, rows: int) -> str:
    row = f"({', '.join([placeholder] * len(_ENTRY_COLUMNS))})"
    return f"INSERT INTO audit_entries ({', '.join(_ENTRY_COLUMNS)}) VALUES {', '.join([row] * rows)}"


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


@dataclass(frozen=True)
class Verification:
    """One verification of the whole chain as recorded: who asked (``via`` console, rpc or daily), when, and
    its outcome."""

    started_at: dt.datetime
    finished_at: dt.datetime
    subject: str
    department_code: str
    via: str
    result: VerifyResult


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
        """Multi-row INSERTs on the driver's cursor (up to ``_ROWS_PER_INSERT`` rows each), inside the
        caller's transaction. Why not SQLAlchemy's ``insert``: compiling and processing it cost the audit
        writer more CPU than the database's own work (``exnode bench rpc``). Why not ``executemany``: the
        SQLite driver releases the GIL for every row's step, and each time the writer must win it back from
        the busy event loop (up to a switch interval each); one statement for the batch is one step, so the
        batch commits sooner and its callers wait less."""
        if not entries:
            return
        dialect = self.connection.dialect
        cursor = self.connection.connection.cursor()
        try:
            for start in range(0, len(entries), _ROWS_PER_INSERT):
                chunk = entries[start:start + _ROWS_PER_INSERT]
                sql, processors = _raw_statement(dialect, f"append{len(chunk)}", audit_entries,
                                                 functools.partial(_insert_entries, rows=len(chunk)), _ENTRY_COLUMNS)
                values: list[Any] = []
                for e in chunk:
                    r = e.record
                    values.extend(_bound(processors, (
                        e.sequence, r.at, r.request_id, r.subject, r.department_code, ",".join(sorted(r.roles)),
                        r.action, r.target, r.result, r.peer, r.detail, e.previous_hash.hex(), e.entry_hash.hex())))
                cursor.execute(sql, values)
        finally:
            cursor.close()

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.connection.execute(insert(audit_checkpoints).values(
            sequence=checkpoint.sequence, node_id=checkpoint.node_id, entry_hash=checkpoint.entry_hash.hex(),
            at=checkpoint.at, kid=checkpoint.kid, algorithm=checkpoint.algorithm, signature=checkpoint.signature.hex()))

    def set_head(self, head: Head) -> None:
        self.connection.execute(update(audit_head).where(audit_head.c.id == 1).values(
            last_sequence=head.last_sequence, last_hash=head.last_hash.hex(),
            last_checkpoint_sequence=head.last_checkpoint_sequence, last_checkpoint_at=head.last_checkpoint_at))

    def set_head_if(self, expected: Head, head: Head) -> bool:
        """Move the head from ``expected`` to ``head`` only if it is still there: True when it was. Why: the
        audit writer keeps the head it last wrote and skips reading it (one statement fewer per batch, a
        fifth of the writer's time); the update takes the same row lock as ``lock_head`` (PostgreSQL
        re-checks the condition after a concurrent writer's commit), so no append is lost or doubled. On
        the driver's cursor, as ``append`` is, in the caller's transaction."""
        sql, processors = _raw_statement(
            self.connection.dialect, "set_head_if", audit_head,
            lambda p: f"UPDATE audit_head SET last_sequence = {p}, last_hash = {p}, last_checkpoint_sequence = {p}, "
                      f"last_checkpoint_at = {p} WHERE id = 1 AND last_sequence = {p} AND last_hash = {p} "
                      f"AND last_checkpoint_sequence = {p}", _HEAD_COLUMNS)
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(sql, _bound(processors, (
                head.last_sequence, head.last_hash.hex(), head.last_checkpoint_sequence, head.last_checkpoint_at,
                expected.last_sequence, expected.last_hash.hex(), expected.last_checkpoint_sequence)))
            return cursor.rowcount == 1
        finally:
            cursor.close()

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

    def add_verification(self, verification: Verification) -> None:
        r = verification.result
        self.connection.execute(insert(audit_verifications).values(
            started_at=verification.started_at, finished_at=verification.finished_at,
            subject=verification.subject[:200], department_code=verification.department_code[:18],
            via=verification.via[:16], ok=r.ok, entries_checked=r.entries_checked,
            checkpoints_checked=r.checkpoints_checked, first_sequence=r.first_sequence,
            last_sequence=r.last_sequence, first_broken_sequence=r.first_broken_sequence,
            unsigned_tail=r.unsigned_tail, problem=r.problem))

    def last_verification(self) -> Verification | None:
        """The newest recorded verification (by the order they finished in: the id is assigned at insert)."""
        row = self.connection.execute(
            select(audit_verifications).order_by(audit_verifications.c.id.desc()).limit(1)).first()
        if row is None:
            return None
        return Verification(row.started_at, row.finished_at, row.subject, row.department_code, row.via, VerifyResult(
            ok=bool(row.ok), entries_checked=row.entries_checked, checkpoints_checked=row.checkpoints_checked,
            first_broken_sequence=row.first_broken_sequence, problem=row.problem, unsigned_tail=row.unsigned_tail,
            first_sequence=row.first_sequence, last_sequence=row.last_sequence))
