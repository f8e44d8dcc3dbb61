"""居民家庭经济状况核对 (household economic checks): with the applicant's written authorisation (授权书), the
核对 centre asks every target that holds assets or income (公安/车辆, 住建/房产, 人社/社保, 税务, 市场监管/工商,
银行 …) about every household member, and combines the answers as they arrive (DOMAIN.md).

Pure domain: the check as filed, each target's state, and what an answer does to it. One signed answer
per target counts; a duplicate is ignored; a forged or unsigned one is INVALID and excluded; a target
that has not answered at the deadline is LATE (UNDELIVERED at once when the broker returned its request), and the
check completes with what came.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from catalog.codes import resident_id_problem
from catalog.errors import FieldProblem, InvalidField

MAX_MEMBERS = 20
MAX_TARGETS = 60
CATEGORIES = ("公安/车辆", "住建/房产", "人社/社保", "税务", "市场监管/工商", "公积金", "银行", "证券", "民政", "其他")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TargetState(StrEnum):
    PENDING = "PENDING"
    ANSWERED = "ANSWERED"
    REFUSED = "REFUSED"
    """The target answered that it will not (with its reason)."""
    LATE = "LATE"
    """No answer by the deadline; an answer after it is not counted."""
    INVALID = "INVALID"
    """An answer whose signature did not verify: excluded from the report."""
    UNDELIVERED = "UNDELIVERED"
    """The broker returned the request: the target has no request queue there (it never connected to it)."""


FINAL = frozenset({TargetState.ANSWERED, TargetState.REFUSED, TargetState.LATE, TargetState.UNDELIVERED})


@dataclass(frozen=True)
class Member:
    id_number: str
    name: str


@dataclass(frozen=True)
class CheckTarget:
    name: str
    """The answering node or platform (its peer id: its public keys are in the peers directory)."""
    category: str
    state: TargetState = TargetState.PENDING
    reason: str = ""
    findings: tuple[dict, ...] = ()
    """Per member: {"id_number": …, "items": {…}} as the target answered."""
    answered_at: dt.datetime | None = None
    signature: str = ""
    kid: str = ""


@dataclass(frozen=True)
class HouseholdCheck:
    id: str
    requester_code: str
    members: tuple[Member, ...]
    purpose: str
    authorisation: str
    """授权书编号: the applicant's written authorisation; no check without it."""
    deadline: dt.datetime
    created_at: dt.datetime
    targets: tuple[CheckTarget, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Every target answered, refused, is LATE, or sent only an invalid answer (excluded)."""
        return all(t.state is not TargetState.PENDING for t in self.targets)

    def target(self, name: str) -> CheckTarget | None:
        return next((t for t in self.targets if t.name == name), None)


def file_check(check_id: str, requester_code: str, members: list[Member], purpose: str, authorisation: str,
               targets: list[tuple[str, str]], deadline: dt.datetime, now: dt.datetime,
               trusted: frozenset[str]) -> HouseholdCheck:
    """A new check, every target PENDING; InvalidField naming every bad field."""
    problems: list[FieldProblem] = []
    if not authorisation.strip():
        problems.append(FieldProblem("authorisation", "the applicant's written authorisation (授权书编号) is required: "
                                                      "no check without it"))
    elif len(authorisation) > 64 or _CONTROL.search(authorisation):
        problems.append(FieldProblem("authorisation", "at most 64 characters, no control characters"))
    if not purpose.strip() or len(purpose) > 500:
        problems.append(FieldProblem("purpose", "is required, at most 500 characters"))
    if not members:
        problems.append(FieldProblem("members", "a household has at least one member"))
    if len(members) > MAX_MEMBERS:
        problems.append(FieldProblem("members", f"{len(members)} members, at most {MAX_MEMBERS}"))
    seen: set[str] = set()
    for index, member in enumerate(members):
        problem = resident_id_problem(member.id_number)
        if problem:
            problems.append(FieldProblem(f"members[{index}].id_number",
                                         f"{member.id_number!r} is not a 公民身份号码 (GB 11643): {problem}"))
        elif member.id_number.upper() in seen:
            problems.append(FieldProblem(f"members[{index}].id_number", "is listed twice"))
        seen.add(member.id_number.upper())
        if not member.name.strip() or len(member.name) > 50 or _CONTROL.search(member.name):
            problems.append(FieldProblem(f"members[{index}].name", "is required, at most 50 characters"))
    if not targets:
        problems.append(FieldProblem("targets", "name at least one target (a department or platform)"))
    if len(targets) > MAX_TARGETS:
        problems.append(FieldProblem("targets", f"{len(targets)} targets, at most {MAX_TARGETS}"))
    names: set[str] = set()
    for index, (name, category) in enumerate(targets):
        if not _NAME.fullmatch(name):
            problems.append(FieldProblem(f"targets[{index}].name", f"{name!r} is not a node or platform id"))
        elif name not in trusted:
            problems.append(FieldProblem(f"targets[{index}].name", f"{name!r} is not a trusted peer of this node "
                                                                   "(its public-keys.json is not in the peers directory)"))
        elif name in names:
            problems.append(FieldProblem(f"targets[{index}].name", f"{name!r} is listed twice"))
        names.add(name)
        if category not in CATEGORIES:
            problems.append(FieldProblem(f"targets[{index}].category",
                                         f"{category!r} is not one of {', '.join(CATEGORIES)}"))
    if deadline <= now:
        problems.append(FieldProblem("deadline", "must be in the future"))
    if problems:
        raise InvalidField(problems)
    return HouseholdCheck(check_id, requester_code,
                          tuple(Member(m.id_number.upper(), m.name.strip()) for m in members), purpose.strip(),
                          authorisation.strip(), deadline, now, tuple(CheckTarget(n, c) for n, c in targets))


def with_answer(check: HouseholdCheck, target: CheckTarget) -> HouseholdCheck:
    return replace(check, targets=tuple(target if t.name == target.name else t for t in check.targets))


def receive(check: HouseholdCheck, name: str, *, valid: bool, refused: bool, reason: str, findings: tuple[dict, ...],
            at: dt.datetime, kid: str, signature: str) -> CheckTarget | None:
    """The target's new state after an answer, or None when the answer changes nothing: a duplicate
    (the target already answered), an unknown target, or a LATE one. An invalid answer marks the target
    INVALID until a valid one arrives (a forger cannot block the real answer)."""
    target = check.target(name)
    if target is None or target.state not in (TargetState.PENDING, TargetState.INVALID):
        return None
    if not valid and target.state is TargetState.INVALID:
        return None
    if at > check.deadline:
        if target.state is TargetState.INVALID:
            return None
        return replace(target, state=TargetState.LATE, reason="answered after the deadline")
    if not valid:
        return replace(target, state=TargetState.INVALID, reason=reason, answered_at=at)
    members = {m.id_number for m in check.members}
    kept = tuple(f for f in findings if isinstance(f, dict) and str(f.get("id_number", "")).upper() in members)
    return replace(target, state=TargetState.REFUSED if refused else TargetState.ANSWERED, reason=reason,
                   findings=() if refused else kept, answered_at=at, kid=kid, signature=signature)


def undelivered(check: HouseholdCheck, name: str, reason: str) -> CheckTarget | None:
    """The target's state once the broker returned its request, or None when it already has an answer
    (a return races no answer: the request never reached a queue, so nothing can have answered it)."""
    target = check.target(name)
    if target is None or target.state is not TargetState.PENDING:
        return None
    return replace(target, state=TargetState.UNDELIVERED, reason=reason)


def overdue(check: HouseholdCheck, now: dt.datetime) -> list[CheckTarget]:
    """The PENDING targets that are LATE now."""
    if now <= check.deadline:
        return []
    return [replace(t, state=TargetState.LATE, reason="no answer by the deadline") for t in check.targets
            if t.state is TargetState.PENDING]
