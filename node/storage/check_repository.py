"""Persistence of household checks (家庭经济状况核对) and their targets."""

from __future__ import annotations

import json

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from catalog.checks import CheckTarget, HouseholdCheck, Member, TargetState
from node.storage.tables import check_targets, household_checks


class CheckRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, check: HouseholdCheck, subject: str) -> None:
        self.connection.execute(insert(household_checks).values(
            id=check.id, requester_code=check.requester_code, subject=subject,
            members=json.dumps([{"id_number": m.id_number, "name": m.name} for m in check.members],
                               ensure_ascii=False),
            purpose=check.purpose, authorisation=check.authorisation, deadline=check.deadline,
            created_at=check.created_at))
        self.connection.execute(insert(check_targets), [
            {"check_id": check.id, "target": t.name, "category": t.category, "state": t.state.value,
             "reason": t.reason, "findings": "[]", "answered_at": None, "kid": "", "signature": "", "answer": None,
             "version": 1} for t in check.targets])

    def get(self, check_id: str, *, for_update: bool = False) -> HouseholdCheck | None:
        query = select(household_checks).where(household_checks.c.id == check_id)
        row = self.connection.execute(query.with_for_update() if for_update and
                                      self.connection.dialect.name == "postgresql" else query).first()
        if row is None:
            return None
        targets = self.connection.execute(select(check_targets).where(check_targets.c.check_id == check_id)
                                          .order_by(check_targets.c.target))
        return HouseholdCheck(
            row.id, row.requester_code, tuple(Member(m["id_number"], m["name"]) for m in json.loads(row.members)),
            row.purpose, row.authorisation, row.deadline, row.created_at,
            tuple(CheckTarget(t.target, t.category, TargetState(t.state), t.reason, tuple(json.loads(t.findings)),
                              t.answered_at, t.signature, t.kid) for t in targets))

    def put_target(self, check_id: str, target: CheckTarget, answer: bytes | None = None) -> None:
        c = check_targets.c
        self.connection.execute(update(check_targets).where(c.check_id == check_id, c.target == target.name).values(
            state=target.state.value, reason=target.reason, findings=json.dumps(list(target.findings),
                                                                                 ensure_ascii=False),
            answered_at=target.answered_at, kid=target.kid, signature=target.signature, answer=answer,
            version=c.version + 1))

    def version(self, check_id: str) -> int:
        """A number that grows with every change of the check's targets (WatchCheck polls it)."""
        from sqlalchemy import func

        return int(self.connection.execute(select(func.coalesce(func.sum(check_targets.c.version), 0)).where(
            check_targets.c.check_id == check_id)).scalar_one())
