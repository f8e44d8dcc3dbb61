"""Persistence of the exchange pipeline: provider keys, batches, records, subscriptions and the outbox."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from catalog.records import Operation, Record, canonical_payload
from node.storage import generations
from node.storage.errors import MissingKeys
from node.storage.secrecy import Sealer, open_payload
from node.storage.tables import (
    batches,
    consumer_keys,
    outbox,
    provider_keys,
    receipts,
    records,
    subscriptions,
)
from security.errors import SecurityError


@dataclass(frozen=True)
class ProviderKey:
    kid: str
    department_code: str
    algorithm: str
    public_pem: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class StoredBatch:
    batch_id: str
    provider_code: str
    resource_code: str
    record_count: int
    merkle_root: bytes
    kid: str
    received_at: dt.datetime
    gaps: list[str]


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    batch_id: str
    platform: str
    queue: str
    consumer_code: str
    content_type: str
    headers: dict[str, str]
    body: bytes
    attempts: int
    unreadable: str = ""
    """Why the body could not be opened (its tag failed, its key is gone); the dispatcher dead-letters it."""


@dataclass(frozen=True)
class Subscription:
    consumer_code: str
    resource_code: str
    platform: str
    grant_id: str


PENDING, CONFIRMED, DEAD = "PENDING", "CONFIRMED", "DEAD"

_RECORD_COLUMNS = ("provider_code", "resource_code", "record_id", "sequence", "operation", "payload", "content_hash",
                   "batch_id", "received_at", "position", "payload_key")


def _insert_records_sql(paramstyle: str) -> str:
    markers = {"qmark": "?", "format": "%s", "pyformat": "%s"}
    if paramstyle not in markers:
        raise NotImplementedError(f"driver parameter style {paramstyle!r} (sqlite3 and psycopg are supported)")
    marker = markers[paramstyle]
    return (f"INSERT INTO {records.name} ({', '.join(_RECORD_COLUMNS)}) "
            f"VALUES ({', '.join([marker] * len(_RECORD_COLUMNS))})")


class ExchangeRepository:
    """``sealer``: payloads and outbox bodies are stored sealed under the node's data keys and opened when
    read (``node.storage.secrecy``); None only for tools that read a database without the node's keys."""

    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        self.sealer = sealer

    # -- provider keys ----------------------------------------------------------------------------------
    def add_key(self, key: ProviderKey) -> None:
        self.connection.execute(insert(provider_keys).values(
            kid=key.kid, department_code=key.department_code, algorithm=key.algorithm, public_pem=key.public_pem,
            created_at=key.created_at, revoked_at=key.revoked_at))

    def get_key(self, kid: str) -> ProviderKey | None:
        row = self.connection.execute(select(provider_keys).where(provider_keys.c.kid == kid)).first()
        return ProviderKey(row.kid, row.department_code, row.algorithm, row.public_pem, row.created_at,
                           row.revoked_at) if row else None

    # -- consumer encryption keys -----------------------------------------------------------------------
    def add_consumer_key(self, key: ProviderKey) -> None:
        self.connection.execute(insert(consumer_keys).values(
            kid=key.kid, department_code=key.department_code, algorithm=key.algorithm, public_pem=key.public_pem,
            created_at=key.created_at, revoked_at=key.revoked_at))
        generations.bump(self.connection, generations.CONSUMER_KEYS)

    def get_consumer_key(self, kid: str) -> ProviderKey | None:
        row = self.connection.execute(select(consumer_keys).where(consumer_keys.c.kid == kid)).first()
        return ProviderKey(row.kid, row.department_code, row.algorithm, row.public_pem, row.created_at,
                           row.revoked_at) if row else None

    def revoke_consumer_keys(self, department_code: str, now: dt.datetime) -> int:
        """Revoke every live encryption key of a department: messages to it are no longer sealed (and go
        only where its grant allows clear delivery)."""
        c = consumer_keys.c
        generations.bump(self.connection, generations.CONSUMER_KEYS)
        return self.connection.execute(update(consumer_keys).where(
            c.department_code == department_code, c.revoked_at.is_(None)).values(revoked_at=now)).rowcount

    def consumer_key(self, department_code: str) -> ProviderKey | None:
        """The newest live encryption key of a consumer department: what its messages are sealed to."""
        c = consumer_keys.c
        row = self.connection.execute(select(consumer_keys).where(
            c.department_code == department_code, c.revoked_at.is_(None)).order_by(c.created_at.desc(), c.kid)
            .limit(1)).first()
        return ProviderKey(row.kid, row.department_code, row.algorithm, row.public_pem, row.created_at,
                           row.revoked_at) if row else None

    # -- batches and records ----------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> StoredBatch | None:
        row = self.connection.execute(select(batches).where(batches.c.batch_id == batch_id)).first()
        if row is None:
            return None
        return StoredBatch(row.batch_id, row.provider_code, row.resource_code, row.record_count,
                           bytes.fromhex(row.merkle_root), row.kid, row.received_at, json.loads(row.gaps))

    def add_batch(self, batch: StoredBatch, signature: bytes) -> None:
        self.connection.execute(insert(batches).values(
            batch_id=batch.batch_id, provider_code=batch.provider_code, resource_code=batch.resource_code,
            record_count=batch.record_count, merkle_root=batch.merkle_root.hex(), kid=batch.kid,
            signature=signature.hex(), received_at=batch.received_at, gaps=json.dumps(batch.gaps)))

    def content_hashes(self, provider_code: str, resource_code: str, ids: Sequence[str]) -> dict[str, str]:
        """Stored content hashes of the given record ids (those already received)."""
        found: dict[str, str] = {}
        r = records.c
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            rows = self.connection.execute(select(r.record_id, r.content_hash).where(
                r.provider_code == provider_code, r.resource_code == resource_code, r.record_id.in_(chunk)))
            found.update({row.record_id: row.content_hash for row in rows})
        return found

    def last_sequence(self, provider_code: str, resource_code: str) -> int:
        r = records.c
        return self.connection.execute(select(func.coalesce(func.max(r.sequence), 0)).where(
            r.provider_code == provider_code, r.resource_code == resource_code)).scalar_one()

    def add_records(self, provider_code: str, resource_code: str, batch_id: str,
                    rows: Iterable[tuple[Record, bytes]], now: dt.datetime, *, first_position: int | None = None
                    ) -> int:
        """One executemany of plain tuples. Why not ``execute(insert(records), dicts)``: SQLAlchemy
        processes every parameter of every row (the same ``received_at`` 500 times a batch), which cost a
        sixth of the ingest's CPU; here the one timestamp is converted once, by the column's own type.

        With ``first_position`` (``PullRepository.claim_positions``) the records are numbered from it in
        the sequencer's order within a batch (sequence, record id); without, they wait for the sequencer."""
        dialect = self.connection.dialect
        process = records.c.received_at.type.bind_processor(dialect)
        received = process(now) if process else now
        rows = list(rows)
        positions: dict[str, int] = {}
        if first_position is not None:
            ordered = sorted(rows, key=lambda row: (row[0].sequence, row[0].id))
            positions = {record.id: first_position + rank for rank, (record, _) in enumerate(ordered)}
        texts = [(record.id, record.payload_json if record.payload_json is not None
                  else canonical_payload(record.payload)) for record, _ in rows]
        key_id: str | None = None
        stored = [text for _, text in texts]
        if self.sealer is not None and texts:
            key_id, stored = self.sealer.seal_records(self.connection, provider_code, resource_code, texts, now)
        values = [(provider_code, resource_code, record.id, record.sequence, record.operation.value, payload,
                   digest.hex(), batch_id, received, positions.get(record.id), key_id)
                  for (record, digest), payload in zip(rows, stored, strict=True)]
        if values:
            self.connection.exec_driver_sql(_insert_records_sql(dialect.paramstyle), values)
            if dialect.name == "postgresql":
                self._analyze_when_stale()
        return len(values)

    def _analyze_when_stale(self) -> None:
        """Keep the planner's statistics of ``records`` current where autovacuum does not run or lags
        behind a night's ingest: re-analyse when the table's file has grown by a tenth (and 8 pages) since
        the last analyse, or when autovacuum's own rule (50 rows + 10 % changed) says so.

        Why: with the statistics of a table that was empty, PostgreSQL answers the duplicate check's lookup
        by record id through ``ix_records_sequence`` with a filter instead of the primary key; measured here,
        800,000 records in it read 650 million rows and a million records took 20 minutes to ingest. The
        file's size is exact at once (the statistics view lags by its flush interval, so it alone missed
        whole ingests); the check is one catalogue read per batch, ANALYZE samples 30,000 rows (~0.1 s)."""
        stale = self.connection.execute(text(
            "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int > 1.1 * c.relpages + 8"
            " OR coalesce(s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0), false)"
            " FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.oid = 'records'::regclass")).scalar()
        if stale:
            self.connection.execute(text("ANALYZE records"))

    def batch_records(self, batch_id: str) -> list[Record]:
        rows = self.connection.execute(select(records).where(records.c.batch_id == batch_id)
                                       .order_by(records.c.sequence))
        return [Record(row.record_id, row.sequence, Operation(row.operation), json.loads(self.open_payload(row)))
                for row in rows]

    def stored_record(self, provider_code: str, resource_code: str, record_id: str) -> Record | None:
        """One stored record as it was ingested (its payload opened when sealed at rest)."""
        c = records.c
        row = self.connection.execute(select(records).where(
            c.provider_code == provider_code, c.resource_code == resource_code, c.record_id == record_id)).first()
        if row is None:
            return None
        return Record(row.record_id, row.sequence, Operation(row.operation), json.loads(self.open_payload(row)))

    def open_payload(self, row: Any) -> str:
        return open_payload(self.sealer, self.connection, row)

    # -- subscriptions ----------------------------------------------------------------------------------
    def subscriptions_for(self, resource_code: str) -> list[Subscription]:
        rows = self.connection.execute(select(subscriptions).where(subscriptions.c.resource_code == resource_code))
        return [Subscription(row.consumer_code, row.resource_code, row.platform, row.grant_id) for row in rows]

    def put_subscription(self, subscription: Subscription, now: dt.datetime) -> None:
        s = subscriptions.c
        key = and_(s.consumer_code == subscription.consumer_code, s.resource_code == subscription.resource_code,
                   s.platform == subscription.platform)
        if self.connection.execute(update(subscriptions).where(key).values(grant_id=subscription.grant_id)).rowcount:
            return
        self.connection.execute(insert(subscriptions).values(
            consumer_code=subscription.consumer_code, resource_code=subscription.resource_code,
            platform=subscription.platform, grant_id=subscription.grant_id, created_at=now))

    # -- outbox -----------------------------------------------------------------------------------------
    def add_outbox(self, rows: Sequence[dict], now: dt.datetime) -> None:
        if rows:
            self.connection.execute(insert(outbox), [
                {**row, **self._sealed_body(row, now), "headers": json.dumps(row["headers"], ensure_ascii=False),
                 "state": PENDING, "attempts": 0, "next_attempt_at": now, "last_error": "", "created_at": now,
                 "delivered_at": None}
                for row in rows])

    def _sealed_body(self, row: dict, now: dt.datetime) -> dict:
        """An outbox body holds the masked records in clear until it is sealed here, under the data key of
        its batch's resource (``x-exnode-resource``)."""
        if self.sealer is None:
            return {"body_key": None}
        key_id, body = self.sealer.seal_body(self.connection, row["headers"]["x-exnode-resource"], row["batch_id"],
                                             row["platform"], row["consumer_code"], row["body"], now)
        return {"body": body, "body_key": key_id}

    def due(self, now: dt.datetime, limit: int, exclude: Iterable[int] = ()) -> list[OutboxMessage]:
        """Pending rows whose next attempt is due, oldest first (rows already in flight excluded)."""
        o = outbox.c
        query = select(outbox).where(o.state == PENDING, o.next_attempt_at <= now).order_by(o.id).limit(limit)
        skip = list(exclude)
        if skip:
            query = query.where(o.id.not_in(skip))
        return [self._message(row) for row in self.connection.execute(query)]

    def any_due(self, now: dt.datetime, exclude: Iterable[int] = ()) -> bool:
        """Whether a pending row is due (ids only: no bodies read)."""
        o = outbox.c
        query = select(o.id).where(o.state == PENDING, o.next_attempt_at <= now).limit(1)
        skip = list(exclude)
        if skip:
            query = query.where(o.id.not_in(skip))
        return self.connection.execute(query).first() is not None

    def claim(self, claimant: str, now: dt.datetime, lease: dt.timedelta, limit: int,
              exclude: Iterable[int] = ()) -> list[OutboxMessage]:
        """Claim up to ``limit`` due rows for ``claimant`` until ``now + lease`` and return them.

        Rows claimed by another claimant whose lease has not run out are not due for this one. On
        PostgreSQL the candidate rows are locked ``FOR UPDATE SKIP LOCKED``, so two replicas claiming at
        the same moment take different rows instead of waiting for (or both taking) the same ones; on
        SQLite the write transaction (BEGIN IMMEDIATE) already serialises claims. Call in a write unit
        of work and commit.
        """
        o = outbox.c
        free = or_(o.claimed_until.is_(None), o.claimed_until < now, o.claimed_by == claimant)
        query = (select(o.id).where(o.state == PENDING, o.next_attempt_at <= now, free).order_by(o.id).limit(limit)
                 .with_for_update(skip_locked=True))
        skip = list(exclude)
        if skip:
            query = query.where(o.id.not_in(skip))
        ids = list(self.connection.execute(query).scalars())
        if not ids:
            return []
        self.connection.execute(update(outbox).where(o.id.in_(ids)).values(claimed_by=claimant,
                                                                           claimed_until=now + lease))
        rows = self.connection.execute(select(outbox).where(o.id.in_(ids)).order_by(o.id))
        return [self._message(row) for row in rows]

    def live_claimants(self, now: dt.datetime) -> list[str]:
        """Claimants holding unexpired claims on pending rows."""
        o = outbox.c
        return [str(c) for c in self.connection.execute(select(o.claimed_by).distinct().where(
            o.state == PENDING, o.claimed_until >= now, o.claimed_by.is_not(None))).scalars()]

    def release_claims(self, claimants: Sequence[str]) -> int:
        """End the claims of claimants known to be gone; their rows are due for anyone again."""
        o = outbox.c
        if not claimants:
            return 0
        return self.connection.execute(update(outbox).where(o.state == PENDING, o.claimed_by.in_(list(claimants)))
                                       .values(claimed_until=None)).rowcount

    def claims(self) -> dict[str, int]:
        """Rows per claimant (pending or not): which replicas dispatched what."""
        o = outbox.c
        return {str(claimant): count for claimant, count in self.connection.execute(
            select(o.claimed_by, func.count()).where(o.claimed_by.is_not(None)).group_by(o.claimed_by))}

    def mark_confirmed(self, ids: Sequence[int], now: dt.datetime) -> None:
        for start in range(0, len(ids), 500):
            self.connection.execute(update(outbox).where(outbox.c.id.in_(list(ids[start:start + 500])),
                                                         outbox.c.state == PENDING)
                                    .values(state=CONFIRMED, delivered_at=now))

    def deliveries_of(self, ids: Sequence[int]) -> list[tuple[str, str, str, str, int]]:
        """(provider, resource, consumer, batch id, records) of each outbox row: what a confirmed row
        delivered (a row holds every record its batch stored)."""
        o, b = outbox.c, batches.c
        found: list[tuple[str, str, str, str, int]] = []
        for start in range(0, len(ids), 500):
            query = (select(b.provider_code, b.resource_code, o.consumer_code, o.batch_id, b.record_count)
                     .select_from(outbox.join(batches, b.batch_id == o.batch_id))
                     .where(o.id.in_(list(ids[start:start + 500]))).order_by(o.id))
            found.extend(tuple(row) for row in self.connection.execute(query))  # type: ignore[misc]
        return found

    def mark_failed(self, message_id: int, attempts: int, next_attempt_at: dt.datetime, error: str, *,
                    dead: bool) -> None:
        self.connection.execute(update(outbox).where(outbox.c.id == message_id).values(
            attempts=attempts, next_attempt_at=next_attempt_at, last_error=error[:2000],
            state=DEAD if dead else PENDING, claimed_until=None))

    def dead_count(self) -> int:
        return int(self.connection.execute(select(func.count()).select_from(outbox)
                                           .where(outbox.c.state == DEAD)).scalar_one())

    def pending_at_least(self, bound: int) -> bool:
        """Whether at least ``bound`` outbox rows wait for the broker: reads at most ``bound`` index entries,
        not the whole outbox."""
        waiting = select(outbox.c.id).where(outbox.c.state == PENDING).limit(bound).subquery()
        return int(self.connection.execute(select(func.count()).select_from(waiting)).scalar_one()) >= bound

    def dead_letters(self, limit: int = 50) -> list[tuple[int, str, str, str, int, str, dt.datetime]]:
        """The newest dead-lettered outbox rows: (id, batch, platform, consumer, attempts, reason, created)."""
        o = outbox.c
        rows = self.connection.execute(
            select(o.id, o.batch_id, o.platform, o.consumer_code, o.attempts, o.last_error, o.created_at)
            .where(o.state == DEAD).order_by(o.id.desc()).limit(limit))
        return [tuple(row) for row in rows]  # type: ignore[misc]

    def depth(self) -> tuple[int, dt.datetime | None]:
        o = outbox.c
        row = self.connection.execute(select(func.count(), func.min(o.created_at)).where(o.state == PENDING)).one()
        return row[0], row[1]

    def batch_states(self, batch_id: str) -> list[tuple[str, str, int, str, str]]:
        """(platform, state, attempts, last error, consumer) of each outbox row of the batch."""
        o = outbox.c
        rows = self.connection.execute(select(o.platform, o.state, o.attempts, o.last_error, o.consumer_code)
                                       .where(o.batch_id == batch_id).order_by(o.id))
        return [(row.platform, row.state, row.attempts, row.last_error, row.consumer_code) for row in rows]

    # -- receipts ---------------------------------------------------------------------------------------
    def add_receipt(self, batch_id: str, receiver_code: str, record_count: int, kid: str, signature: bytes,
                    now: dt.datetime) -> bool:
        """False when the receiver already sent a receipt for the batch (receipts are idempotent)."""
        c = receipts.c
        if self.connection.execute(select(c.batch_id).where(c.batch_id == batch_id,
                                                            c.receiver_code == receiver_code)).first():
            return False
        self.connection.execute(insert(receipts).values(batch_id=batch_id, receiver_code=receiver_code,
                                                        record_count=record_count, kid=kid,
                                                        signature=signature.hex(), received_at=now))
        return True

    def receivers(self, batch_id: str) -> set[str]:
        return set(self.connection.execute(select(receipts.c.receiver_code)
                                           .where(receipts.c.batch_id == batch_id)).scalars())

    def batch_consumers(self, batch_id: str) -> set[str]:
        return set(self.connection.execute(select(outbox.c.consumer_code)
                                           .where(outbox.c.batch_id == batch_id)).scalars())

    def batch_record_ids(self, batch_id: str) -> set[str]:
        return set(self.connection.execute(select(records.c.record_id)
                                           .where(records.c.batch_id == batch_id)).scalars())


    def _message(self, row: Any) -> OutboxMessage:
        body = bytes(row.body)
        if row.body_key is not None:
            if self.sealer is None:
                raise MissingKeys(f"outbox row {row.id} is encrypted and this reader was given no keys")
            try:
                body = self.sealer.open_body(self.connection, row.body_key, row.id, row.batch_id, row.platform,
                                             row.consumer_code, body)
            except SecurityError as error:
                return OutboxMessage(row.id, row.batch_id, row.platform, row.queue, row.consumer_code,
                                     row.content_type, json.loads(row.headers), b"", row.attempts, str(error))
        return OutboxMessage(row.id, row.batch_id, row.platform, row.queue, row.consumer_code, row.content_type,
                             json.loads(row.headers), body, row.attempts)

