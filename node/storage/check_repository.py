"""Persistence of household checks (家庭经济状况核对) and their targets."""

from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from catalog.checks import CheckTarget, HouseholdCheck, Member, TargetState
from node.storage.secrecy import CHECKS_SCOPE, SEALED_PREFIX, Sealer
from node.storage.tables import check_targets, household_checks


def _aad(check_id: str, target: str, field: str) -> bytes:
    return f"exnode check\x00{check_id}\x00{target}\x00{field}".encode()


class CheckRepository:
    """The members (ID numbers, names), each target's findings and its signed answer are personal data:
    sealed under the node's ``checks`` data key when the unit of work has the node's keys (issue 17)."""

    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        self.sealer = sealer

    def _seal_text(self, text: str, aad: bytes) -> str:
        if self.sealer is None:
            return text
        sealed = self.sealer.seal_value(self.connection, CHECKS_SCOPE, aad, text.encode("utf-8"), dt.datetime.now(dt.UTC))
        return sealed[:len(SEALED_PREFIX)].decode() + base64.b64encode(sealed[len(SEALED_PREFIX):]).decode("ascii")

    def _open_text(self, stored: str, aad: bytes, what: str) -> str:
        prefix = SEALED_PREFIX.decode()
        if not stored.startswith(prefix) or self.sealer is None:
            return stored
        raw = SEALED_PREFIX + base64.b64decode(stored[len(prefix):])
        return self.sealer.open_value(self.connection, raw, aad, what).decode("utf-8")

    def _seal_bytes(self, value: bytes | None, aad: bytes) -> bytes | None:
        if value is None or self.sealer is None:
            return value
        return self.sealer.seal_value(self.connection, CHECKS_SCOPE, aad, value, dt.datetime.now(dt.UTC))

    def answer(self, check_id: str, target: str) -> bytes | None:
        """The target's signed answer as received, opened."""
        c = check_targets.c
        stored = self.connection.execute(select(c.answer).where(c.check_id == check_id, c.target == target)).scalar()
        if stored is None or self.sealer is None:
            return None if stored is None else bytes(stored)
        return self.sealer.open_value(self.connection, bytes(stored), _aad(check_id, target, "answer"),
                                      f"check {check_id} answer of {target}")

    def add(self, check: HouseholdCheck, subject: str) -> None:
        members = json.dumps([{"id_number": m.id_number, "name": m.name} for m in check.members], ensure_ascii=False)
        self.connection.execute(insert(household_checks).values(
            id=check.id, requester_code=check.requester_code, subject=subject,
            members=self._seal_text(members, _aad(check.id, "", "members")),
            purpose=check.purpose, authorisation=check.authorisation, deadline=check.deadline,
            created_at=check.created_at))
        self.connection.execute(insert(check_targets), [
            {"check_id": check.id, "target": t.name, "category": t.category, "state": t.state.value,
             "reason": t.reason, "findings": self._seal_text("[]", _aad(check.id, t.name, "findings")),
             "answered_at": None, "kid": "", "signature": "", "answer": None, "version": 1} for t in check.targets])

    def get(self, check_id: str, *, for_update: bool = False) -> HouseholdCheck | None:
        query = select(household_checks).where(household_checks.c.id == check_id)
        row = self.connection.execute(query.with_for_update() if for_update and
                                      self.connection.dialect.name == "postgresql" else query).first()
        if row is None:
            return None
        targets = self.connection.execute(select(check_targets).where(check_targets.c.check_id == check_id)
                                          .order_by(check_targets.c.target))
        members = self._open_text(row.members, _aad(row.id, "", "members"), f"check {row.id} members")
        return HouseholdCheck(
            row.id, row.requester_code, tuple(Member(m["id_number"], m["name"]) for m in json.loads(members)),
            row.purpose, row.authorisation, row.deadline, row.created_at,
            tuple(CheckTarget(t.target, t.category, TargetState(t.state), t.reason, tuple(json.loads(self._open_text(
                t.findings, _aad(row.id, t.target, "findings"), f"check {row.id} findings of {t.target}"))),
                              t.answered_at, t.signature, t.kid) for t in targets))

    def put_target(self, check_id: str, target: CheckTarget, answer: bytes | None = None) -> None:
        c = check_targets.c
        self.connection.execute(update(check_targets).where(c.check_id == check_id, c.target == target.name).values(
            state=target.state.value, reason=target.reason,
            findings=self._seal_text(json.dumps(list(target.findings), ensure_ascii=False),
                                     _aad(check_id, target.name, "findings")),
            answered_at=target.answered_at, kid=target.kid, signature=target.signature,
            answer=self._seal_bytes(answer, _aad(check_id, target.name, "answer")),
            version=c.version + 1))

    def version(self, check_id: str) -> int:
        """A number that grows with every change of the check's targets (WatchCheck polls it)."""
        from sqlalchemy import func

        return int(self.connection.execute(select(func.coalesce(func.sum(check_targets.c.version), 0)).where(
            check_targets.c.check_id == check_id)).scalar_one())
