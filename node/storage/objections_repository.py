"""Persistence of 校核纠错: objections, which records are disputed, who a record was delivered to, and the
counts the quality score and the monthly statistics are made of."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, tuple_, update
from sqlalchemy.engine import Connection, Row

from catalog.objections import Objection, ObjectionState, RecordKey
from node.storage.errors import StorageError
from node.storage.tables import deliveries, objections, records, tier_disputes


class StaleObjection(StorageError):
    """The objection changed since it was read (another answer was stored first)."""


@dataclass(frozen=True)
class StoredRecord:
    key: RecordKey
    batch_id: str
    received_at: dt.datetime


@dataclass(frozen=True)
class ObjectionFilter:
    department_code: str = ""
    """Objections this department raised or must answer."""
    resource_code: str = ""
    state: ObjectionState | None = None
    visible_to: str | None = None


def _objection(row: Row) -> Objection:
    return Objection(row.id, RecordKey(row.provider_code, row.resource_code, row.record_id), row.item, row.raiser_code,
                     row.raised_by, row.evidence, tuple(json.loads(row.attachments)), ObjectionState(row.state),
                     row.created_at, row.deadline, row.answer, row.answered_by, row.answered_at, row.corrected_by,
                     row.escalated_at, row.version)


def _values(o: Objection) -> dict:
    return {"id": o.id, "provider_code": o.record.provider_code, "resource_code": o.record.resource_code,
            "record_id": o.record.record_id, "item": o.item, "raiser_code": o.raiser_code, "raised_by": o.raised_by,
            "evidence": o.evidence, "attachments": json.dumps(list(o.attachments)), "state": o.state.value,
            "created_at": o.created_at, "deadline": o.deadline, "answer": o.answer, "answered_by": o.answered_by,
            "answered_at": o.answered_at, "corrected_by": o.corrected_by, "escalated_at": o.escalated_at,
            "version": o.version}


class ObjectionsRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def record(self, key: RecordKey) -> StoredRecord | None:
        c = records.c
        row = self.connection.execute(select(c.batch_id, c.received_at).where(
            c.provider_code == key.provider_code, c.resource_code == key.resource_code,
            c.record_id == key.record_id)).first()
        return StoredRecord(key, row.batch_id, row.received_at) if row else None

    def delivered_to(self, record: StoredRecord) -> frozenset[str]:
        """The departments the record's batch was delivered to (the relay's confirmed deliveries)."""
        d = deliveries.c
        rows = self.connection.execute(select(d.consumer_code).distinct().where(
            d.batch_id == record.batch_id, d.provider_code == record.key.provider_code,
            d.resource_code == record.key.resource_code, d.consumer_code != ""))
        return frozenset(row.consumer_code for row in rows)

    def add(self, objection: Objection) -> None:
        self.connection.execute(insert(objections).values(**_values(objection)))

    def get(self, objection_id: str) -> Objection | None:
        row = self.connection.execute(select(objections).where(objections.c.id == objection_id)).first()
        return _objection(row) if row else None

    def save(self, objection: Objection, expected_version: int) -> None:
        values = _values(objection)
        values.pop("id")
        result = self.connection.execute(update(objections).where(
            objections.c.id == objection.id, objections.c.version == expected_version).values(**values))
        if result.rowcount != 1:
            raise StaleObjection(objection.id)

    def list(self, flt: ObjectionFilter, *, after_id: str, limit: int) -> list[Objection]:
        c = objections.c
        conditions = []
        for code in (flt.department_code, flt.visible_to):
            if code:
                conditions.append(or_(c.raiser_code == code, c.provider_code == code))
        if flt.resource_code:
            conditions.append(c.resource_code == flt.resource_code)
        if flt.state:
            conditions.append(c.state == flt.state.value)
        if after_id:
            conditions.append(c.id > after_id)
        return [_objection(row) for row in
                self.connection.execute(select(objections).where(*conditions).order_by(c.id).limit(limit))]

    def open_due(self, now: dt.datetime) -> list[Objection]:
        c = objections.c
        rows = self.connection.execute(select(objections).where(
            c.state == ObjectionState.OPEN.value, c.deadline <= now, c.escalated_at.is_(None)).order_by(c.id))
        return [_objection(row) for row in rows]

    def disputed(self, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Of (provider, resource, record id) keys, those with an open objection here, or marked open by
        the lower node that relayed the record (``tier_disputes``), in chunks."""
        wanted = list(dict.fromkeys(keys))
        found: set[tuple[str, str, str]] = set()
        if not wanted:
            return found
        c, t = objections.c, tier_disputes.c
        sources = []
        if self._any_open():
            sources.append((select(c.provider_code, c.resource_code, c.record_id), c.state == ObjectionState.OPEN.value,
                            (c.provider_code, c.resource_code, c.record_id)))
        if self._any_marked():
            sources.append((select(t.provider_code, t.resource_code, t.record_id), t.disputed.is_(True),
                            (t.provider_code, t.resource_code, t.record_id)))
        for query, condition, columns in sources:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows = self.connection.execute(query.where(condition, tuple_(*columns).in_(chunk)))
                found.update((row[0], row[1], row[2]) for row in rows)
        return found

    def _any_open(self) -> bool:
        """One index probe: most pulls meet no objection at all and skip the per-record lookup."""
        c = objections.c
        return self.connection.execute(select(c.id).where(c.state == ObjectionState.OPEN.value).limit(1)).first() \
            is not None

    def _any_marked(self) -> bool:
        t = tier_disputes.c
        return self.connection.execute(select(t.record_id).where(t.disputed.is_(True)).limit(1)).first() is not None

    def counts(self, resource_codes: Sequence[str] = ()) -> dict[str, dict[str, int]]:
        """Per resource: objections, open, upheld (corrected)."""
        c = objections.c
        query = select(c.resource_code, c.state, func.count()).group_by(c.resource_code, c.state)
        if resource_codes:
            query = query.where(c.resource_code.in_(list(resource_codes)))
        out: dict[str, dict[str, int]] = {}
        for resource, state, count in self.connection.execute(query):
            entry = out.setdefault(resource, {"objections": 0, "open": 0, "upheld": 0})
            entry["objections"] += count
            if state == ObjectionState.OPEN.value:
                entry["open"] += count
            elif state == ObjectionState.CORRECTED.value:
                entry["upheld"] += count
        return out

    def record_counts(self, resource_codes: Sequence[str] = ()) -> dict[tuple[str, str], int]:
        """Stored records per (provider, resource)."""
        c = records.c
        query = select(c.provider_code, c.resource_code, func.count()).group_by(c.provider_code, c.resource_code)
        if resource_codes:
            query = query.where(c.resource_code.in_(list(resource_codes)))
        return {(row[0], row[1]): int(row[2]) for row in self.connection.execute(query)}
