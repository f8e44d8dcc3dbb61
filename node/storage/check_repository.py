"""Persistence of household checks (家庭经济状况核对) and their targets.

The members (ID numbers and names), each target's findings and its answer as received are personal data:
with the node's sealer they are stored sealed under the ``checks`` scope's data key of the month (the
row's ``data_key``), bound to the check and target (AAD), and opened on read. A node without keys (some
tests) stores them in clear, and rows from before the sealing are read as they are.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Collection

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from catalog.checks import CheckTarget, HouseholdCheck, Member, TargetState
from node.storage.secrecy import Sealer
from node.storage.tables import check_targets, household_checks

SCOPE = "checks"


def _aad(check_id: str, part: str, target: str = "") -> bytes:
    return f"exnode check\x00{check_id}\x00{target}\x00{part}".encode()


class CheckRepository:
    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        self.sealer = sealer

    def _seal_text(self, aad: bytes, text: str, now: dt.datetime) -> tuple[str | None, str]:
        if self.sealer is None:
            return None, text
        used, sealed = self.sealer.seal_blob(self.connection, SCOPE, aad, text.encode("utf-8"), now)
        return used, base64.b64encode(sealed).decode("ascii")

    def _open_text(self, key_id: str | None, aad: bytes, stored: str, what: str) -> str:
        if key_id is None or self.sealer is None:
            return stored
        return self.sealer.open_blob(self.connection, key_id, aad, base64.b64decode(stored), what).decode("utf-8")

    def add(self, check: HouseholdCheck, subject: str) -> None:
        members = json.dumps([{"id_number": m.id_number, "name": m.name} for m in check.members], ensure_ascii=False)
        key_id, sealed_members = self._seal_text(_aad(check.id, "members"), members, check.created_at)
        self.connection.execute(insert(household_checks).values(
            id=check.id, requester_code=check.requester_code, subject=subject, members=sealed_members,
            purpose=check.purpose, authorisation=check.authorisation, deadline=check.deadline,
            created_at=check.created_at, data_key=key_id))
        rows = []
        for t in check.targets:
            target_key, findings = self._seal_text(_aad(check.id, "findings", t.name), "[]", check.created_at)
            rows.append({"check_id": check.id, "target": t.name, "category": t.category, "state": t.state.value,
                         "reason": t.reason, "findings": findings, "answered_at": None, "kid": "", "signature": "",
                         "answer": None, "version": 1, "data_key": target_key})
        self.connection.execute(insert(check_targets), rows)

    def get(self, check_id: str, *, for_update: bool = False) -> HouseholdCheck | None:
        query = select(household_checks).where(household_checks.c.id == check_id)
        row = self.connection.execute(query.with_for_update() if for_update and
                                      self.connection.dialect.name == "postgresql" else query).first()
        if row is None:
            return None
        targets = self.connection.execute(select(check_targets).where(check_targets.c.check_id == check_id)
                                          .order_by(check_targets.c.target))
        members = json.loads(self._open_text(row.data_key, _aad(check_id, "members"), row.members,
                                             f"check {check_id}: members"))
        return HouseholdCheck(
            row.id, row.requester_code, tuple(Member(m["id_number"], m["name"]) for m in members),
            row.purpose, row.authorisation, row.deadline, row.created_at,
            tuple(CheckTarget(t.target, t.category, TargetState(t.state), t.reason, tuple(json.loads(self._open_text(
                t.data_key, _aad(check_id, "findings", t.target), t.findings, f"check {check_id}: {t.target}"))),
                t.answered_at, t.signature, t.kid) for t in targets))

    def put_target(self, check_id: str, target: CheckTarget, answer: bytes | None = None) -> None:
        c = check_targets.c
        now = dt.datetime.now(dt.UTC)
        key_id, findings = self._seal_text(_aad(check_id, "findings", target.name),
                                           json.dumps(list(target.findings), ensure_ascii=False), now)
        if answer is not None and self.sealer is not None:
            _, answer = self.sealer.seal_blob(self.connection, SCOPE, _aad(check_id, "answer", target.name), answer,
                                              now)  # the same month's key as the findings
        self.connection.execute(update(check_targets).where(c.check_id == check_id, c.target == target.name).values(
            state=target.state.value, reason=target.reason, findings=findings,
            answered_at=target.answered_at, kid=target.kid, signature=target.signature, answer=answer,
            version=c.version + 1, data_key=key_id))

    def answer(self, check_id: str, target: str) -> bytes | None:
        """The target's signed answer as received (opened), or None."""
        c = check_targets.c
        row = self.connection.execute(select(c.answer, c.data_key).where(c.check_id == check_id, c.target == target)
                                      ).first()
        if row is None or row.answer is None:
            return None
        if row.data_key is None or self.sealer is None:
            return bytes(row.answer)
        return self.sealer.open_blob(self.connection, row.data_key, _aad(check_id, "answer", target),
                                     bytes(row.answer), f"check {check_id}: answer of {target}")

    def reseal(self, retired: Collection[str], now: dt.datetime, limit: int) -> int:
        """Up to ``limit`` checks and targets sealed under a retired data key (``retired``: the retired key ids)
        sealed again under the live one (the re-encryption job; the watched version does not move)."""
        if self.sealer is None:
            return 0
        h, t = household_checks.c, check_targets.c
        checks = self.connection.execute(select(h.id, h.members, h.data_key).where(h.data_key.in_(sorted(retired)))
                                         .limit(limit)).all()
        for row in checks:
            aad = _aad(row.id, "members")
            key_id, members = self._seal_text(aad, self._open_text(row.data_key, aad, row.members,
                                                                   f"check {row.id}: members"), now)
            self.connection.execute(update(household_checks).where(h.id == row.id)
                                    .values(members=members, data_key=key_id))
        targets = self.connection.execute(select(t.check_id, t.target, t.findings, t.answer, t.data_key)
                                          .where(t.data_key.in_(sorted(retired))).limit(limit)).all()
        for row in targets:
            aad = _aad(row.check_id, "findings", row.target)
            key_id, findings = self._seal_text(aad, self._open_text(
                row.data_key, aad, row.findings, f"check {row.check_id}: {row.target}"), now)
            answer = row.answer
            if answer is not None:
                answer_aad = _aad(row.check_id, "answer", row.target)
                opened = self.sealer.open_blob(self.connection, row.data_key, answer_aad, bytes(answer),
                                               f"check {row.check_id}: answer of {row.target}")
                _, answer = self.sealer.seal_blob(self.connection, SCOPE, answer_aad, opened, now)
            self.connection.execute(update(check_targets).where(t.check_id == row.check_id, t.target == row.target)
                                    .values(findings=findings, answer=answer, data_key=key_id))
        return len(checks) + len(targets)

    def version(self, check_id: str) -> int:
        """A number that grows with every change of the check's targets (WatchCheck polls it)."""
        return int(self.connection.execute(select(func.coalesce(func.sum(check_targets.c.version), 0)).where(
            check_targets.c.check_id == check_id)).scalar_one())

    def purge(self, before: dt.datetime, limit: int = 500) -> int:
        """Delete up to ``limit`` checks filed before ``before`` with their targets (the retention)."""
        ids = [r.id for r in self.connection.execute(select(household_checks.c.id).where(
            household_checks.c.created_at < before).order_by(household_checks.c.created_at).limit(limit))]
        if ids:
            self.connection.execute(delete(check_targets).where(check_targets.c.check_id.in_(ids)))
            self.connection.execute(delete(household_checks).where(household_checks.c.id.in_(ids)))
        return len(ids)
