"""Persistence of the verification grants' daily counters (``verification_usage``) and of the answers
given to other nodes' requests (``rpc_answers``, sealed at rest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy import insert as plain_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from node.storage.raw import fetch_one
from node.storage.secrecy import Sealer
from node.storage.tables import rpc_answers, verification_usage

ANSWER_SCOPE = "rpc"


def _answer_aad(request_id: str) -> bytes:
    return f"exnode rpc answer\x00{request_id}".encode()


def _take_statement(dialect: str) -> Any:
    """The take as one upsert with bound parameters, built once per dialect and run on the driver's cursor
    (``fetch_one``): building and executing it through SQLAlchemy cost more than running it, and the audit
    writer runs every take of a group commit in its one thread."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    u = verification_usage.c
    statement = insert(verification_usage).values(
        grant_id=bindparam("grant_id"), day=bindparam("day"), verifications=1, mismatches=bindparam("mismatches"))
    return statement.on_conflict_do_update(
        index_elements=[u.grant_id, u.day],
        set_={"verifications": u.verifications + 1, "mismatches": u.mismatches + bindparam("more_mismatches")},
        where=u.verifications < bindparam("quota")).returning(u.verifications)


_TAKES = {name: _take_statement(name) for name in ("sqlite", "postgresql")}


def _take_many_statement(dialect: str) -> Any:
    """``count`` takes of one grant and day as one upsert, all or none: the caller gives ``count`` no larger
    than the quota, so a first row never starts above it."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    u = verification_usage.c
    statement = insert(verification_usage).values(
        grant_id=bindparam("grant_id"), day=bindparam("day"), verifications=bindparam("count"),
        mismatches=bindparam("mismatches"))
    return statement.on_conflict_do_update(
        index_elements=[u.grant_id, u.day],
        set_={"verifications": u.verifications + bindparam("more"), "mismatches": u.mismatches + bindparam("more_mismatches")},
        where=u.verifications + bindparam("more_again") <= bindparam("quota")).returning(u.verifications)


_TAKE_MANY = {name: _take_many_statement(name) for name in ("sqlite", "postgresql")}


class VerificationRepository:
    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        self.sealer = sealer

    def take_counting(self, grant_id: str, day: str, quota: int, mismatches: int) -> int | None:
        """``take`` and ``add_mismatches`` in one statement: the mismatches count only with the verification."""
        if quota <= 0:
            return None
        row = fetch_one(self.connection, _TAKES[self.connection.dialect.name], {
            "grant_id": grant_id, "day": day, "mismatches": mismatches, "more_mismatches": mismatches,
            "quota": quota})
        return None if row is None else row[0]

    def take_many(self, grant_id: str, day: str, quota: int, count: int, mismatches: int) -> int | None:
        """``count`` verifications (with their mismatches) in one statement if the quota has room for all of
        them: the new count, or None with nothing changed (the caller then takes them one by one)."""
        if quota <= 0 or count < 1 or count > quota:
            return None
        row = fetch_one(self.connection, _TAKE_MANY[self.connection.dialect.name], {
            "grant_id": grant_id, "day": day, "count": count, "mismatches": mismatches, "more": count,
            "more_mismatches": mismatches, "more_again": count, "quota": quota})
        return None if row is None else row[0]

    def take(self, grant_id: str, day: str, quota: int) -> int | None:
        """Count one verification of the grant on the day, if the quota allows it: the new count, or None
        when the quota is used up (nothing changes then). One statement, so concurrent callers (replicas
        on one PostgreSQL) never exceed the quota together."""
        dialect = self.connection.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        u = verification_usage.c
        statement = insert(verification_usage).values(grant_id=grant_id, day=day, verifications=1, mismatches=0)
        statement = statement.on_conflict_do_update(
            index_elements=[u.grant_id, u.day], set_={"verifications": u.verifications + 1},
            where=u.verifications < quota).returning(u.verifications)
        if quota <= 0:
            return None
        return self.connection.execute(statement).scalar()

    def add_mismatches(self, grant_id: str, day: str, count: int) -> None:
        if count:
            u = verification_usage.c
            self.connection.execute(update(verification_usage).where(u.grant_id == grant_id, u.day == day)
                                    .values(mismatches=u.mismatches + count))

    def usage(self, grant_id: str, day: str) -> tuple[int, int]:
        """(verifications, mismatches) of the grant on the day."""
        u = verification_usage.c
        row = self.connection.execute(select(u.verifications, u.mismatches).where(
            u.grant_id == grant_id, u.day == day)).first()
        return (row.verifications, row.mismatches) if row else (0, 0)

    # -- answers to other nodes' requests (at-most-once) ------------------------------------------------
    def stored_answer(self, request_id: str) -> bytes | None:
        row = self.connection.execute(select(rpc_answers.c.answer, rpc_answers.c.data_key).where(
            rpc_answers.c.request_id == request_id)).first()
        if row is None:
            return None
        if row.data_key is None or self.sealer is None:
            return bytes(row.answer)
        return self.sealer.open_blob(self.connection, row.data_key, _answer_aad(request_id), bytes(row.answer),
                                     f"the stored answer to request {request_id}")

    def store_answer(self, request_id: str, requester_node: str, answer: bytes, now: dt.datetime) -> None:
        """Sealed under the ``rpc`` scope's data key: the answer holds the records or findings it gave."""
        key_id = None
        if self.sealer is not None:
            key_id, answer = self.sealer.seal_blob(self.connection, ANSWER_SCOPE, _answer_aad(request_id), answer, now)
        self.connection.execute(plain_insert(rpc_answers).values(
            request_id=request_id, requester_node=requester_node, answer=answer, answered_at=now, data_key=key_id))

    def reseal(self, retired: Collection[str], now: dt.datetime, limit: int) -> int:
        """Up to ``limit`` stored answers sealed under a retired data key sealed again under the live one."""
        if self.sealer is None:
            return 0
        c = rpc_answers.c
        rows = self.connection.execute(select(c.request_id, c.answer, c.data_key).where(c.data_key.in_(sorted(retired)))
                                       .limit(limit)).all()
        for row in rows:
            aad = _answer_aad(row.request_id)
            opened = self.sealer.open_blob(self.connection, row.data_key, aad, bytes(row.answer),
                                           f"the stored answer to request {row.request_id}")
            key_id, sealed = self.sealer.seal_blob(self.connection, ANSWER_SCOPE, aad, opened, now)
            self.connection.execute(update(rpc_answers).where(c.request_id == row.request_id)
                                    .values(answer=sealed, data_key=key_id))
        return len(rows)

    def purge_answers(self, before: dt.datetime, limit: int = 2000) -> int:
        """Delete up to ``limit`` stored answers given before ``before`` (a redelivery that late is past any
        request's deadline: it is answered DEADLINE_EXCEEDED, not from the store)."""
        c = rpc_answers.c
        ids = [r.request_id for r in self.connection.execute(select(c.request_id).where(c.answered_at < before)
                                                              .order_by(c.answered_at).limit(limit))]
        if ids:
            self.connection.execute(delete(rpc_answers).where(c.request_id.in_(ids)))
        return len(ids)
