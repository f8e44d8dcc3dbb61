"""Persistence of the verification grants' daily counters (``verification_usage``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert as plain_insert
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from node.storage.secrecy import CHECKS_SCOPE, Sealer
from node.storage.tables import rpc_answers, verification_usage


def _answer_aad(request_id: str, requester_node: str) -> bytes:
    return f"exnode rpc answer\x00{request_id}\x00{requester_node}".encode()


class VerificationRepository:
    """Verification counters, and the answers given to other nodes (query answers, verdicts, household-check
    answers: personal data, sealed under the node's data key when the unit of work has the keys)."""

    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        self.sealer = sealer

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
        row = self.connection.execute(select(rpc_answers.c.answer, rpc_answers.c.requester_node).where(
            rpc_answers.c.request_id == request_id)).first()
        if row is None:
            return None
        if self.sealer is None:
            return bytes(row.answer)
        return self.sealer.open_value(self.connection, bytes(row.answer), _answer_aad(request_id, row.requester_node),
                                      f"stored answer to request {request_id}")

    def store_answer(self, request_id: str, requester_node: str, answer: bytes, now: dt.datetime) -> None:
        if self.sealer is not None:
            answer = self.sealer.seal_value(self.connection, CHECKS_SCOPE, _answer_aad(request_id, requester_node),
                                            answer, now)
        self.connection.execute(plain_insert(rpc_answers).values(
            request_id=request_id, requester_node=requester_node, answer=answer, answered_at=now))
