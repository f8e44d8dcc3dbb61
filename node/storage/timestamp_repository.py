"""Persistence of trusted time (RFC 3161): the roots waiting for a timestamp and the tokens covering them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from node.storage.tables import tsa_pending, tsa_tokens


@dataclass(frozen=True)
class PendingRoot:
    id: int
    kind: str
    ref: str
    digest: bytes
    created_at: dt.datetime


@dataclass(frozen=True)
class StoredToken:
    id: int
    root: bytes
    reply: bytes
    gen_time: dt.datetime
    covered: list[PendingRoot]
    """In leaf order: the root of roots is the Merkle root of their digests."""


class TimestampRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add_pending(self, kind: str, ref: str, digest: bytes, now: dt.datetime) -> None:
        self.connection.execute(insert(tsa_pending).values(kind=kind, ref=ref, digest=digest.hex(), created_at=now,
                                                           timestamp_id=None, leaf=None))

    def pending(self, limit: int) -> list[PendingRoot]:
        p = tsa_pending.c
        rows = self.connection.execute(select(tsa_pending).where(p.timestamp_id.is_(None))
                                       .order_by(p.created_at, p.id).limit(limit))
        return [PendingRoot(r.id, r.kind, r.ref, bytes.fromhex(r.digest), r.created_at) for r in rows]

    def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many roots wait, and since when the oldest."""
        p = tsa_pending.c
        count, oldest = self.connection.execute(select(func.count(), func.min(p.created_at))
                                                .where(p.timestamp_id.is_(None))).one()
        return int(count), oldest

    def add_token(self, root: bytes, reply: bytes, gen_time: dt.datetime, covered: Sequence[PendingRoot],
                  now: dt.datetime) -> int:
        token_id = self.connection.execute(insert(tsa_tokens).values(
            root=root.hex(), roots=len(covered), reply=reply, gen_time=gen_time, stamped_at=now)).inserted_primary_key[0]
        for leaf, pending in enumerate(covered):
            self.connection.execute(update(tsa_pending).where(tsa_pending.c.id == pending.id)
                                    .values(timestamp_id=token_id, leaf=leaf))
        return int(token_id)

    def tokens(self) -> Iterator[StoredToken]:
        p = tsa_pending.c
        for row in self.connection.execute(select(tsa_tokens).order_by(tsa_tokens.c.id)).all():
            covered = [PendingRoot(r.id, r.kind, r.ref, bytes.fromhex(r.digest), r.created_at)
                       for r in self.connection.execute(select(tsa_pending).where(p.timestamp_id == row.id)
                                                        .order_by(p.leaf))]
            yield StoredToken(row.id, bytes.fromhex(row.root), bytes(row.reply), row.gen_time, covered)

    def token_of(self, kind: str, ref: str) -> int | None:
        p = tsa_pending.c
        return self.connection.execute(select(p.timestamp_id).where(p.kind == kind, p.ref == ref)).scalar()

    def covering(self, kind: str, ref: str) -> tuple[list[bytes], int, bytes] | None:
        """(the digests the token covers, in leaf order; this root's leaf; the TSA's reply) for the token
        that stamped (kind, ref); None while it waits or when nothing of that name was queued."""
        p = tsa_pending.c
        row = self.connection.execute(select(p.timestamp_id, p.leaf).where(
            p.kind == kind, p.ref == ref, p.timestamp_id.is_not(None)).limit(1)).first()
        if row is None:
            return None
        reply = self.connection.execute(select(tsa_tokens.c.reply).where(tsa_tokens.c.id == row.timestamp_id)).scalar_one()
        digests = [bytes.fromhex(d) for d in self.connection.execute(
            select(p.digest).where(p.timestamp_id == row.timestamp_id).order_by(p.leaf)).scalars()]
        return digests, int(row.leaf), bytes(reply)

    def waiting(self, kind: str, ref: str) -> bool:
        p = tsa_pending.c
        return self.connection.execute(select(p.id).where(p.kind == kind, p.ref == ref, p.timestamp_id.is_(None))
                                       .limit(1)).first() is not None
