"""Persistence of the current-record index (``record_keys``): keyed hash → current record, per resource."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, exists, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from catalog.objections import ObjectionState
from node.storage import generations
from node.storage.raw import fetch_one
from node.storage.secrecy import Sealer, open_payload
from node.storage.tables import objections, record_keys, records, resources, tier_disputes


@dataclass(frozen=True)
class IndexEntry:
    key_hash: str
    provider_code: str
    record_id: str
    sequence: int


@dataclass(frozen=True)
class CurrentRecord:
    key_hash: str
    provider_code: str
    record_id: str
    sequence: int
    payload: str
    """The stored payload's canonical JSON text."""
    disputed: bool = False
    """Under an open objection (校核纠错), here or marked by the lower node."""


_k, _r = record_keys.c, records.c
_o, _t = objections.c, tier_disputes.c
_DISPUTED = or_(
    exists().where(_o.provider_code == _k.provider_code, _o.resource_code == _k.resource_code,
                   _o.record_id == _k.record_id, _o.state == ObjectionState.OPEN.value),
    exists().where(_t.provider_code == _k.provider_code, _t.resource_code == _k.resource_code,
                   _t.record_id == _k.record_id, _t.disputed.is_(True))).label("disputed")
"""校核纠错: an open objection here, or one the lower node marked open (index probes on the record's key)."""
_CURRENT = (select(_k.key_hash, _k.provider_code, _k.record_id, _k.sequence, _r.resource_code, _r.payload,
                   _r.payload_key, _DISPUTED)
            .select_from(record_keys.join(records, and_(
                _r.provider_code == _k.provider_code, _r.resource_code == _k.resource_code,
                _r.record_id == _k.record_id))))
_CURRENT_ONE = _CURRENT.where(_k.resource_code == bindparam("resource_code"), _k.key_hash == bindparam("key_hash"))
"""One key's current record and whether it is disputed (VerifyClaim's lookup, one statement): built once,
so a call does not pay for building and keying the statement again."""
_CURRENT_MANY = _CURRENT.where(_k.resource_code == bindparam("resource_code"),
                               _k.key_hash.in_(bindparam("key_hashes", expanding=True)))
"""Several keys' current records (QueryRecords): one statement built once, as ``_CURRENT_ONE``; a call
used to build and key a new one (``_CURRENT.where(...)``), which cost more than SQLite's lookups."""
_PUBLISHED_VERSION = select(resources.c.published_version).where(
    resources.c.code == bindparam("code"), resources.c.status == "PUBLISHED")
_ASKING = select(_PUBLISHED_VERSION.scalar_subquery().label("published_version"),
                 generations.current(generations.GRANTS).label("grants"),
                 generations.current(generations.CONSUMER_KEYS).label("consumer_keys"))


_ONE = select(literal(1).label("one")).subquery("one")
_ASKING_AND_CURRENT = select(*_ASKING.selected_columns, *_CURRENT.selected_columns).select_from(
    _ONE.outerjoin(record_keys.join(records, and_(
        _r.provider_code == _k.provider_code, _r.resource_code == _k.resource_code, _r.record_id == _k.record_id)),
        and_(_k.resource_code == bindparam("resource_code"), _k.key_hash == bindparam("key_hash"))))
"""``_ASKING`` and ``_CURRENT_ONE`` as one statement (one row; the record's columns null without one):
VerifyClaim's whole read when it knows the published version's key items already."""


class _RecordRow(NamedTuple):
    """The record's columns of ``_ASKING_AND_CURRENT``'s row, named as ``open_payload`` reads them."""

    key_hash: str
    provider_code: str
    record_id: str
    sequence: int
    resource_code: str
    payload: str
    payload_key: str | None
    disputed: Any


@dataclass(frozen=True)
class AskingState:
    """What a question about a resource reads first, in one statement: the published version (the
    metadata cache's key) and the counters of the grant and consumer-key caches."""

    published_version: int | None
    grants_generation: int | None
    consumer_keys_generation: int | None


class RecordIndexRepository:
    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        self.sealer = sealer
        """Opens payloads encrypted at rest (``node.storage.secrecy``); None only for tools without keys."""

    def put(self, resource_code: str, entries: Iterable[IndexEntry], now: dt.datetime) -> int:
        """UPSERTs: each key now names its record, unless the index already holds a later record of that key
        (records relayed out of order never make an older one current again). One statement per batch."""
        latest: dict[str, IndexEntry] = {}
        for entry in entries:
            held = latest.get(entry.key_hash)
            if held is None or entry.sequence >= held.sequence:
                latest[entry.key_hash] = entry
        if not latest:
            return 0
        dialect = self.connection.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(record_keys)
        statement = statement.on_conflict_do_update(
            index_elements=[record_keys.c.resource_code, record_keys.c.key_hash],
            set_={"provider_code": statement.excluded.provider_code, "record_id": statement.excluded.record_id,
                  "sequence": statement.excluded.sequence, "updated_at": statement.excluded.updated_at},
            where=record_keys.c.sequence <= statement.excluded.sequence)
        self.connection.execute(statement, [
            {"resource_code": resource_code, "key_hash": e.key_hash, "provider_code": e.provider_code,
             "record_id": e.record_id, "sequence": e.sequence, "updated_at": now} for e in latest.values()])
        return len(latest)

    def remove(self, resource_code: str, removals: Iterable[tuple[str, int]]) -> None:
        """DELETEs by key: (key hash, the DELETE's sequence); a later UPSERT of the key stays current."""
        c = record_keys.c
        for key_hash, sequence in removals:
            self.connection.execute(delete(record_keys).where(
                c.resource_code == resource_code, c.key_hash == key_hash, c.sequence <= sequence))

    def remove_records(self, provider_code: str, resource_code: str, record_ids: Sequence[str]) -> None:
        """DELETEs without a key in their payload: the index entries of the records they name (by id)."""
        c = record_keys.c
        for start in range(0, len(record_ids), 500):
            self.connection.execute(delete(record_keys).where(
                c.provider_code == provider_code, c.resource_code == resource_code,
                c.record_id.in_(list(record_ids[start:start + 500]))))

    def current(self, resource_code: str, key_hashes: Sequence[str]) -> dict[str, CurrentRecord]:
        """The current record of each key that has one, with its payload (opened under its data key) and
        whether it is disputed."""
        found: dict[str, CurrentRecord] = {}
        if len(key_hashes) == 1:
            chunks: list[Any] = [self.connection.execute(
                _CURRENT_ONE, {"resource_code": resource_code, "key_hash": key_hashes[0]})]
        else:
            unique = list(dict.fromkeys(key_hashes))
            chunks = [self.connection.execute(_CURRENT_MANY, {
                "resource_code": resource_code, "key_hashes": unique[start:start + 500]})
                for start in range(0, len(unique), 500)]
        for rows in chunks:
            for row in rows:
                found[row.key_hash] = CurrentRecord(row.key_hash, row.provider_code, row.record_id, row.sequence,
                                                    open_payload(self.sealer, self.connection, row),
                                                    bool(row.disputed))
        return found

    def asking_state_and_current(self, resource_code: str, key_hash: str
                                 ) -> tuple[AskingState, CurrentRecord | None]:
        """``asking_state`` and the key's ``current`` record in one statement."""
        row = fetch_one(self.connection, _ASKING_AND_CURRENT, {
            "code": resource_code, "resource_code": resource_code, "key_hash": key_hash})
        assert row is not None  # the statement always has its one row (an outer join on one constant row)
        asking = AskingState(row[0], row[1], row[2])
        if row[3] is None:
            return asking, None
        record = _RecordRow(*row[3:])
        return asking, CurrentRecord(record.key_hash, record.provider_code, record.record_id, record.sequence,
                                     open_payload(self.sealer, self.connection, record), bool(record.disputed))

    def asking_state(self, resource_code: str) -> AskingState:
        """The published version and the cache counters, in one statement (None: not published, or a
        counter's row is missing)."""
        row = fetch_one(self.connection, _ASKING, {"code": resource_code})
        assert row is not None  # a select of three scalar subqueries: always one row
        return AskingState(row[0], row[1], row[2])

    def published_version(self, resource_code: str) -> int | None:
        """The resource's published version while it is published (None: not, or no longer, published): the
        caches of a version's key items and metadata are valid for that version."""
        return self.connection.execute(_PUBLISHED_VERSION, {"code": resource_code}).scalar()

    def count(self, resource_code: str) -> int:
        return self.connection.execute(select(func.count()).select_from(record_keys).where(
            record_keys.c.resource_code == resource_code)).scalar_one()
