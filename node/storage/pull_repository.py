"""Persistence of the nightly pull: the sequencer that numbers stored records, pages of records in that
order, per-platform acknowledged positions, the cursor secret and the closed days' manifests."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from node.storage.tables import day_manifests, pull_acks, pull_secrets, records

_SEQUENCER_LOCK = 0x65786E6F6465  # "exnode": the advisory lock the PostgreSQL sequencer holds to commit


@dataclass(frozen=True)
class PulledRow:
    position: int
    provider_code: str
    resource_code: str
    record_id: str
    sequence: int
    operation: str
    payload: str


@dataclass(frozen=True)
class StoredDayManifest:
    day: str
    document: str
    kid: str
    signature: bytes
    closed_at: dt.datetime


class PullRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- the stored-records order ----------------------------------------------------------------------
    def sequence_new_records(self) -> int:
        """Number the committed records that have no position yet, after every numbered one.

        Ingest transactions commit in any order, so positions are not handed out at insert: one sequencer
        at a time (PostgreSQL: an advisory lock held to commit; SQLite: the write lock) numbers what is
        committed, in receiving order. Its commit makes the new positions visible all at once and after
        every lower one, so a reader's highest visible position is a safe high-water mark. Returns how
        many were numbered. Call in a write unit of work and commit."""
        connection = self.connection
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
        if connection.execute(select(records.c.record_id).where(records.c.position.is_(None)).limit(1)).first() is None:
            return 0
        base = self.high_water()
        result = connection.execute(text(
            "UPDATE records SET position = :base + ranked.rn FROM ("
            " SELECT provider_code AS p, resource_code AS r, record_id AS i,"
            "  row_number() OVER (ORDER BY received_at, batch_id, sequence, record_id) AS rn"
            " FROM records WHERE position IS NULL) AS ranked"
            " WHERE records.provider_code = ranked.p AND records.resource_code = ranked.r"
            " AND records.record_id = ranked.i"), {"base": base})
        return int(result.rowcount or 0)

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
        query = (select(c.position, c.provider_code, c.resource_code, c.record_id, c.sequence, c.operation, c.payload)
                 .where(c.position > after, c.position <= until).order_by(c.position).limit(limit))
        if only is not None:
            query = query.where(c.resource_code.in_(sorted(only)))
        if excluding:
            query = query.where(c.resource_code.not_in(sorted(excluding)))
        if received is not None:
            query = query.where(c.received_at >= received[0], c.received_at < received[1])
        return [PulledRow(*row) for row in self.connection.execute(query).all()]

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
        if self.connection.dialect.name != "postgresql":
            self.connection.execute(insert(records), list(rows))
            return
        columns = [c.name for c in records.columns]
        raw = self.connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f"COPY records ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in columns])
