"""Persistence of the current-record index (``record_keys``): keyed hash → current record, per resource."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from node.storage.secrecy import Sealer, open_payload
from node.storage.tables import record_keys, records, resources


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


_k, _r = record_keys.c, records.c
_CURRENT_ONE = (select(_k.key_hash, _k.provider_code, _k.record_id, _k.sequence, _r.resource_code, _r.payload,
                       _r.payload_key)
                .select_from(record_keys.join(records, and_(
                    _r.provider_code == _k.provider_code, _r.resource_code == _k.resource_code,
                    _r.record_id == _k.record_id)))
                .where(_k.resource_code == bindparam("resource_code"), _k.key_hash == bindparam("key_hash")))
"""One key's current record (VerifyClaim's lookup, one index probe): built once, so a call does not pay
for building and keying the statement again."""
_PUBLISHED_VERSION = select(resources.c.published_version).where(
    resources.c.code == bindparam("code"), resources.c.status == "PUBLISHED")


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
        """The current record of each key that has one, with its payload (opened under its data key)."""
        k, r = record_keys.c, records.c
        found: dict[str, CurrentRecord] = {}
        if len(key_hashes) == 1:
            rows = self.connection.execute(_CURRENT_ONE, {"resource_code": resource_code, "key_hash": key_hashes[0]})
            for row in rows:
                found[row.key_hash] = CurrentRecord(row.key_hash, row.provider_code, row.record_id, row.sequence,
                                                    open_payload(self.sealer, self.connection, row))
            return found
        for start in range(0, len(key_hashes), 500):
            chunk = list(dict.fromkeys(key_hashes[start:start + 500]))
            rows = self.connection.execute(
                select(k.key_hash, k.provider_code, k.record_id, k.sequence, r.resource_code, r.payload,
                       r.payload_key)
                .select_from(record_keys.join(records, and_(
                    r.provider_code == k.provider_code, r.resource_code == k.resource_code,
                    r.record_id == k.record_id)))
                .where(k.resource_code == resource_code, k.key_hash.in_(chunk)))
            for row in rows:
                found[row.key_hash] = CurrentRecord(row.key_hash, row.provider_code, row.record_id, row.sequence,
                                                    open_payload(self.sealer, self.connection, row))
        return found

    def published_version(self, resource_code: str) -> int | None:
        """The resource's published version while it is published (None: not, or no longer, published): the
        caches of a version's key items and metadata are valid for that version."""
        return self.connection.execute(_PUBLISHED_VERSION, {"code": resource_code}).scalar()

    def count(self, resource_code: str) -> int:
        return self.connection.execute(select(func.count()).select_from(record_keys).where(
            record_keys.c.resource_code == resource_code)).scalar_one()
