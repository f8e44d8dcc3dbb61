"""Persistence of the nightly pull: the sequencer that numbers stored records, pages of records in that
order, per-platform acknowledged positions, the cursor secret and the closed days' manifests."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from node.storage.secrecy import Sealer, open_payload
from node.storage.tables import day_manifests, pull_acks, pull_secrets, records

_SEQUENCER_LOCK = 0x65786E6F6465  # "exnode": the advisory lock the PostgreSQL sequencer holds to commit
SEQUENCER_CHUNK = 10_000
"""Records the sequencer numbers per statement: large enough that round trips do not count, small enough
that each statement's work (and PostgreSQL's memory for it) stays bounded."""
_AFTER_KEY = " AND (received_at, batch_id, sequence, record_id) > (:received_at, :batch_id, :sequence, :record_id)"
_PINNED_PLAN = ("enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_hashjoin", "enable_mergejoin", "jit")
"""Settings the PostgreSQL sequencer turns off for its statements, so that the one plan left is the
ordered scan of the partial index and a TID scan per row, whatever the statistics say; and JIT, which
the cost of a turned-off plan node (it is only penalised, never removed) would otherwise set off, at
~0.2 s of compiling per statement."""


def _key_parameters(after: tuple | None) -> dict:
    if after is None:
        return {}
    return dict(zip(("received_at", "batch_id", "sequence", "record_id"), after, strict=True))


@contextmanager
def _pinned_plan(connection: Connection) -> Iterator[None]:
    """Turn the ``_PINNED_PLAN`` settings off for the statements in the block, then put them back (they
    are transaction-local: SET LOCAL, so a failure in the block needs no undo, the rollback does it)."""
    names = ", ".join(f"'{name}'" for name in _PINNED_PLAN)
    previous = connection.execute(text(f"SELECT name, setting FROM pg_settings WHERE name IN ({names})")).all()
    connection.execute(text(f"SELECT set_config(name, 'off', true) FROM pg_settings WHERE name IN ({names})"))
    yield
    for name, setting in previous:
        connection.execute(text("SELECT set_config(:name, :setting, true)"), {"name": name, "setting": setting})


@dataclass(frozen=True)
class PulledRow:
    position: int
    provider_code: str
    resource_code: str
    record_id: str
    sequence: int
    operation: str
    payload: str
    content_hash: str = ""
    """SHA-256 (hex) of the record's canonical form, as ingest stored it: lets the pull use the stored text
    as it is when it hashes to that, instead of parsing and re-encoding it."""


@dataclass(frozen=True)
class StoredDayManifest:
    day: str
    document: str
    kid: str
    signature: bytes
    closed_at: dt.datetime


class PullRepository:
    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.sealer = sealer
        self.connection = connection

    # -- the stored-records order ----------------------------------------------------------------------
    def sequence_new_records(self, chunk: int = SEQUENCER_CHUNK) -> int:
        """Number the committed records that have no position yet, after every numbered one.

        Ingest transactions commit in any order, so positions are not handed out at insert: one sequencer
        at a time (PostgreSQL: an advisory lock held to commit; SQLite: the write lock) numbers what is
        committed, in receiving order. Its commit makes the new positions visible all at once and after
        every lower one, so a reader's highest visible position is a safe high-water mark. Returns how
        many were numbered. Call in a write unit of work and commit.

        It numbers ``chunk`` records at a time, read in order through ``ix_records_unpositioned`` from
        just after the last key of the chunk before, so its work grows with the new records alone. The
        plan must not depend on statistics: a table just filled by ingest has none or stale ones, and
        with them PostgreSQL numbered 20,000 records by reading the table once per record (issue 13)."""
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        connection = self.connection
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
        number = self._number_postgresql if postgres else self._number_sqlite
        base = self.high_water()
        numbered = 0
        after: tuple | None = None
        with _pinned_plan(connection) if postgres else nullcontext():
            while True:
                count, after = number(base + numbered, after, chunk)
                numbered += count
                if count < chunk:
                    return numbered

    def claim_positions(self) -> int:
        """Numbering at commit: the first free position, for the records this transaction is about to
        insert (in order from it). Takes the sequencer's lock first (PostgreSQL: the advisory lock, held to
        commit; SQLite: the write lock a write unit of work holds already), so these positions and the
        sequencer's never collide, and they become visible after every lower one: each was committed
        before this transaction got the lock. Call in a write unit of work that commits soon after."""
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
        return self.high_water() + 1

    def _number_postgresql(self, base: int, after: tuple | None, chunk: int) -> tuple[int, tuple | None]:
        """Number the next ``chunk`` unpositioned records after the key ``after`` in one statement: the
        chunk through the partial index, its rows updated by their physical address (a TID scan each,
        valid while the sequencer's lock keeps every other writer of positions out) and the chunk's
        count and last key returned. Returns (count, last key or None)."""
        row = self.connection.execute(text(
            "WITH chunk AS ("
            " SELECT ctid AS row_address, received_at, batch_id, sequence, record_id,"
            "  row_number() OVER (ORDER BY received_at, batch_id, sequence, record_id) AS rank"
            " FROM (SELECT ctid, received_at, batch_id, sequence, record_id FROM records"
            "  WHERE position IS NULL" + (_AFTER_KEY if after is not None else "") +
            "  ORDER BY received_at, batch_id, sequence, record_id LIMIT :chunk) AS next),"
            " numbered AS (UPDATE records SET position = :base + chunk.rank FROM chunk"
            "  WHERE records.ctid = chunk.row_address RETURNING 1)"
            " SELECT (SELECT count(*) FROM numbered) AS count, received_at, batch_id, sequence, record_id"
            " FROM chunk WHERE rank = (SELECT max(rank) FROM chunk)"), {"base": base, "chunk": chunk, **_key_parameters(after)}).first()
        if row is None:
            return 0, None
        return int(row.count), (row.received_at, row.batch_id, row.sequence, row.record_id)

    def _number_sqlite(self, base: int, after: tuple | None, chunk: int) -> tuple[int, tuple | None]:
        """The next ``chunk`` unpositioned records after the key ``after``, read through the partial
        index (INDEXED BY: SQLite fails rather than plan otherwise), then numbered by rowid (stable while
        the write lock is held). Returns (count, last key or None)."""
        rows = self.connection.execute(text(
            "SELECT rowid, received_at, batch_id, sequence, record_id FROM records INDEXED BY ix_records_unpositioned"
            " WHERE position IS NULL" + (_AFTER_KEY if after is not None else "") +
            " ORDER BY received_at, batch_id, sequence, record_id LIMIT :chunk"),
            {"chunk": chunk, **_key_parameters(after)}).all()
        if not rows:
            return 0, None
        self.connection.exec_driver_sql("UPDATE records SET position = ? WHERE rowid = ?",
                                        [(base + rank, row[0]) for rank, row in enumerate(rows, 1)])
        return len(rows), tuple(rows[-1][1:])

    def high_water(self) -> int:
        return int(self.connection.execute(select(func.coalesce(func.max(records.c.position), 0))).scalar_one())

    def high_water_before(self, end: dt.datetime) -> int:
        """The highest position of the records received before ``end``: where a closed day's pull stops."""
        c = records.c
        return int(self.connection.execute(select(func.coalesce(func.max(c.position), 0))
                                           .where(c.received_at < end)).scalar_one())

    def page(self, after: int, until: int, limit: int, *, only: Collection[str] | None = None,
             excluding: Collection[str] = (), received: tuple[dt.datetime, dt.datetime] | None = None
             ) -> list[PulledRow]:
        """Up to ``limit`` records with after < position <= until, in position order, of the resources
        ``only`` names (all when None) minus ``excluding`` (and received in [start, end) if given).

        Read in windows of positions, widened while they come back sparse, so that each query touches a
        bounded stretch of the index whatever plan the database picks: without statistics (a table just
        filled) PostgreSQL would otherwise sort the whole remaining range for every page."""
        rows: list[PulledRow] = []
        span = limit * 2
        lower = after
        while len(rows) < limit and lower < until:
            upper = min(until, lower + span)
            found = self._window(lower, upper, limit - len(rows), only, excluding, received)
            rows.extend(found)
            if len(rows) < limit:  # this window is exhausted
                lower = upper
                if len(found) < span // 4:
                    span = min(span * 2, limit * 256)
        return rows

    def _window(self, after: int, until: int, limit: int, only: Collection[str] | None, excluding: Collection[str],
                received: tuple[dt.datetime, dt.datetime] | None) -> list[PulledRow]:
        c = records.c
        query = (select(c.position, c.provider_code, c.resource_code, c.record_id, c.sequence, c.operation, c.payload,
                        c.payload_key, c.content_hash)
                 .where(c.position > after, c.position <= until).order_by(c.position).limit(limit))
        if only is not None:
            query = query.where(c.resource_code.in_(sorted(only)))
        if excluding:
            query = query.where(c.resource_code.not_in(sorted(excluding)))
        if received is not None:
            query = query.where(c.received_at >= received[0], c.received_at < received[1])
        found = self.connection.execute(query).all()
        if self.sealer is None:
            return [PulledRow(*row[:6], self._open(row), row.content_hash) for row in found]
        payloads = self.sealer.open_records(self.connection, found)  # one batch, not a call per row
        return [PulledRow(*row[:6], text, row.content_hash) for row, text in zip(found, payloads, strict=True)]

    def _open(self, row: Any) -> str:
        return open_payload(self.sealer, self.connection, row)

    def day_bounds(self, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
        """The lowest and highest positions of the records received in [start, end) (0, 0 when none)."""
        c = records.c
        low, high = self.connection.execute(select(func.min(c.position), func.max(c.position))
                                            .where(c.received_at >= start, c.received_at < end)).one()
        return int(low or 0), int(high or 0)

    # -- acknowledgements ------------------------------------------------------------------------------
    def acknowledged(self, platform: str) -> int:
        row = self.connection.execute(select(pull_acks.c.position).where(pull_acks.c.platform == platform)).first()
        return int(row.position) if row else 0

    def acknowledge(self, platform: str, position: int, now: dt.datetime) -> None:
        """Move the platform's acknowledged position forward (never back: acknowledgements are cumulative)."""
        c = pull_acks.c
        changed = self.connection.execute(update(pull_acks).where(c.platform == platform, c.position < position)
                                          .values(position=position, acked_at=now)).rowcount
        if changed:
            return
        if self.connection.execute(select(c.position).where(c.platform == platform)).first() is None:
            self.connection.execute(insert(pull_acks).values(platform=platform, position=position, acked_at=now))

    # -- the cursor secret -------------------------------------------------------------------------------
    def cursor_secret(self) -> bytes | None:
        row = self.connection.execute(select(pull_secrets.c.secret).where(pull_secrets.c.name == "cursor")).first()
        return bytes(row.secret) if row else None

    def create_cursor_secret(self) -> bytes:
        """Create the secret once; of two nodes racing, the loser reads the winner's."""
        try:
            with self.connection.begin_nested():
                self.connection.execute(insert(pull_secrets).values(name="cursor", secret=secrets.token_bytes(32)))
        except IntegrityError:
            pass
        secret = self.cursor_secret()
        assert secret is not None
        return secret

    # -- closed days --------------------------------------------------------------------------------------
    def get_day(self, day: str) -> StoredDayManifest | None:
        row = self.connection.execute(select(day_manifests).where(day_manifests.c.day == day)).first()
        if row is None:
            return None
        return StoredDayManifest(row.day, row.document, row.kid, bytes.fromhex(row.signature), row.closed_at)

    def add_day(self, manifest: StoredDayManifest) -> None:
        self.connection.execute(insert(day_manifests).values(
            day=manifest.day, document=manifest.document, kid=manifest.kid, signature=manifest.signature.hex(),
            closed_at=manifest.closed_at))

    # -- bulk setup (benchmarks) -----------------------------------------------------------------------
    def add_positioned(self, rows: Sequence[dict]) -> None:
        """Insert records that already carry positions (the benchmark's setup; not an ingest path). COPY
        on PostgreSQL, executemany elsewhere."""
        if not rows:
            return
        rows = [{"payload_key": None, **row} for row in rows]
        if self.sealer is not None:
            now = rows[0]["received_at"]
            for row in rows:
                row["payload_key"], (row["payload"],) = self.sealer.seal_records(
                    self.connection, row["provider_code"], row["resource_code"], [(row["record_id"], row["payload"])],
                    now)
        if self.connection.dialect.name != "postgresql":
            self.connection.execute(insert(records), list(rows))
            return
        columns = [c.name for c in records.columns]
        raw = self.connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f"COPY records ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in columns])
