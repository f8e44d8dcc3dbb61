"""校核纠错: a consumer objects to a shared record, the provider checks it by a deadline.

A department that received a record and believes it wrong raises an objection (异议) to the record, or
to one item of it, with its evidence in words and the hashes of its attachments (the files stay with
the department; the hash proves later which file was meant). While the objection is open the record is
served marked *disputed*. The provider checks it within its limit (working days): it confirms the record
is correct, with reasons, or corrects it — the correction is a new record sent through the normal ingest
(so it reaches every subscriber, signed like any other), which the provider names; either answer clears
the flag. An objection still open at its deadline escalates to the coordinator; a late answer still
counts, recorded as late. Upheld objections (corrected records) are the resource's quality measure.
Pure code, clock passed in.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from catalog.errors import FieldProblem, IllegalTransition, InvalidField
from catalog.lists import text_problem

MAX_ATTACHMENTS = 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
"""An attachment's SHA-256 or SM3 digest, lower-case hex."""


class ObjectionState(StrEnum):
    OPEN = "OPEN"
    CONFIRMED = "CONFIRMED"
    """The provider checked the record and it stands (with reasons): the objection is not upheld."""
    CORRECTED = "CORRECTED"
    """The provider sent a corrected record: the objection is upheld."""


@dataclass(frozen=True)
class RecordKey:
    provider_code: str
    resource_code: str
    record_id: str

    def __str__(self) -> str:
        return f"{self.resource_code}#{self.record_id}"


@dataclass(frozen=True)
class Objection:
    id: str
    record: RecordKey
    item: str
    """The item objected to; empty: the whole record."""
    raiser_code: str
    raised_by: str
    evidence: str
    attachments: tuple[str, ...]
    state: ObjectionState
    created_at: dt.datetime
    deadline: dt.datetime
    answer: str = ""
    answered_by: str = ""
    answered_at: dt.datetime | None = None
    corrected_by: str = ""
    """The record id of the correction (a record of the same resource stored after the objection)."""
    escalated_at: dt.datetime | None = None
    version: int = 1

    @property
    def open(self) -> bool:
        return self.state is ObjectionState.OPEN

    @property
    def upheld(self) -> bool:
        return self.state is ObjectionState.CORRECTED

    @property
    def late(self) -> bool:
        return self.answered_at is not None and self.answered_at >= self.deadline

    def overdue(self, now: dt.datetime) -> bool:
        return self.open and now >= self.deadline


def raise_objection(objection_id: str, record: RecordKey, item: str, items: tuple[str, ...], raiser_code: str,
                    raised_by: str, evidence: str, attachments: tuple[str, ...], now: dt.datetime,
                    deadline: dt.datetime) -> Objection:
    """A new open objection; every problem of the request is reported at once (nothing is stored)."""
    problems: list[FieldProblem] = []
    if not evidence.strip():
        problems.append(FieldProblem("evidence", "an objection gives its evidence (说明异议的依据)"))
    problem = text_problem("evidence", evidence)
    if problem:
        problems.append(problem)
    if item and item not in items:
        problems.append(FieldProblem("item", f"{item!r} is not an item of {record.resource_code} (items: "
                                             f"{', '.join(items)})"))
    if len(attachments) > MAX_ATTACHMENTS:
        problems.append(FieldProblem("attachments", f"at most {MAX_ATTACHMENTS} attachment hashes"))
    for index, digest in enumerate(attachments):
        if not _DIGEST.fullmatch(digest):
            problems.append(FieldProblem(f"attachments[{index}]", f"{digest[:80]!r} is not a SHA-256 or SM3 digest "
                                                                   "(64 lower-case hex characters)"))
    if len(set(attachments)) != len(attachments):
        problems.append(FieldProblem("attachments", "an attachment hash is listed twice"))
    if problems:
        raise InvalidField(problems)
    return Objection(objection_id, record, item, raiser_code, raised_by, evidence.strip(), attachments,
                     ObjectionState.OPEN, now, deadline)


def _require_open(objection: Objection, action: str) -> None:
    if not objection.open:
        raise IllegalTransition(objection.state.value, action, f"objection {objection.id} was answered at "
                                f"{objection.answered_at} ({objection.state.value})", what="objection")


def confirm(objection: Objection, reviewer: str, reasons: str, now: dt.datetime) -> Objection:
    """The record stands: the provider says why."""
    _require_open(objection, "confirm")
    if not reasons.strip():
        raise InvalidField.one("reason", "confirming a record gives the reasons it is correct (须说明理由)")
    problem = text_problem("reason", reasons)
    if problem:
        raise InvalidField(problem)
    return replace(objection, state=ObjectionState.CONFIRMED, answer=reasons.strip(), answered_by=reviewer,
                   answered_at=now, version=objection.version + 1)


def correct(objection: Objection, reviewer: str, corrected_by: str, note: str, now: dt.datetime) -> Objection:
    """The provider sent a corrected record (through the normal ingest) and names it."""
    _require_open(objection, "correct")
    if not corrected_by.strip():
        raise InvalidField.one("record_id", "name the corrected record the provider sent")
    problem = text_problem("reason", note)
    if problem:
        raise InvalidField(problem)
    return replace(objection, state=ObjectionState.CORRECTED, answer=note.strip() or "已更正",
                   answered_by=reviewer, answered_at=now, corrected_by=corrected_by, version=objection.version + 1)


def escalate(objection: Objection, now: dt.datetime) -> Objection:
    _require_open(objection, "escalate")
    if now < objection.deadline:
        raise IllegalTransition(objection.state.value, "escalate", f"its deadline is {objection.deadline}",
                                what="objection")
    if objection.escalated_at is not None:
        raise IllegalTransition(objection.state.value, "escalate", f"objection {objection.id} was escalated at "
                                f"{objection.escalated_at}", what="objection")
    return replace(objection, escalated_at=now, version=objection.version + 1)


@dataclass(frozen=True)
class QualityScore:
    """数据质量: a resource's objections and its deliveries' timeliness (the responsibility list's view)."""

    resource_code: str
    provider_code: str
    records: int
    objections: int
    open: int
    upheld: int
    compliance: str
    missed_periods: int

    @property
    def upheld_per_10k(self) -> float:
        """Objections upheld (records corrected) per 10,000 stored records."""
        return round(self.upheld * 10_000 / self.records, 2) if self.records else 0.0
