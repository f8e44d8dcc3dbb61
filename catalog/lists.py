"""数据共享责任清单、需求清单 and grants: "清单式管理、销账式推进" — every item tracked until closed.

Pure domain code with the clock passed in: the responsibility list's compliance is computed from the
delivery times the exchange pipeline records; the demand workflow decides by the resource's share
type; approval yields a grant (consumer × resource × items × expiry × masking rules).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from catalog.errors import FieldProblem, IllegalTransition, InvalidField
from catalog.model import Resource, ResourceStatus, ShareType, UpdateCycle
from catalog.workdays import BEIJING, WorkingCalendar, weekends_only

# Periods (days, weeks, 旬, months…) and deadlines are counted in Beijing time (BEIJING, re-exported).

MAX_TEXT = 2000
MAX_ITEMS = 500
DEFAULT_GRANT_DAYS = 365
DEFAULT_REVIEW_DAYS = 10
"""Calendar days a description-only demand (SUBMITTED) waits for its requester to name a resource
before it expires; the review stages count working days instead (``Deadlines``)."""
DEFAULT_COMPLIANCE_DAYS = 2
DEFAULT_ANSWER_DAYS = 5
DEFAULT_UNPUBLISHED_ANSWER_DAYS = 10
"""有条件共享: the provider answers within 5 working days, 10 when the data is in its remit but not yet
on the platform; the competent department checks an application within 2 working days (DOMAIN.md)."""


# -- responsibility list --------------------------------------------------------------------------------

DEFAULT_GRACE_DAYS: dict[UpdateCycle, int] = {
    UpdateCycle.REALTIME: 0, UpdateCycle.DAILY: 1, UpdateCycle.WEEKLY: 2, UpdateCycle.TEN_DAYS: 3,
    UpdateCycle.MONTHLY: 5, UpdateCycle.QUARTERLY: 10, UpdateCycle.HALF_YEARLY: 15, UpdateCycle.YEARLY: 30,
}
"""Days after a period ends by which its delivery is due; a department's explicit entry may differ."""


class Compliance(StrEnum):
    ON_TIME = "ON_TIME"
    OVERDUE = "OVERDUE"
    NEVER_DELIVERED = "NEVER_DELIVERED"
    NOT_YET_DUE = "NOT_YET_DUE"
    UNSCHEDULED = "UNSCHEDULED"
    """Update cycle 其他 (OTHER) with no explicit due rule: nothing can be late."""


def _local_date(at: dt.datetime) -> dt.date:
    return at.astimezone(BEIJING).date()


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), BEIJING)


def period_of(cycle: UpdateCycle, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The period [start, end) of the cycle that contains ``at`` (Beijing time)."""
    day = _local_date(at)
    if cycle in (UpdateCycle.REALTIME, UpdateCycle.DAILY):
        first, last = day, day
    elif cycle is UpdateCycle.WEEKLY:
        first = day - dt.timedelta(days=day.weekday())
        last = first + dt.timedelta(days=6)
    elif cycle is UpdateCycle.TEN_DAYS:
        if day.day <= 10:
            first, last = day.replace(day=1), day.replace(day=10)
        elif day.day <= 20:
            first, last = day.replace(day=11), day.replace(day=20)
        else:
            first, last = day.replace(day=21), day.replace(day=calendar.monthrange(day.year, day.month)[1])
    else:
        months = {UpdateCycle.MONTHLY: 1, UpdateCycle.QUARTERLY: 3, UpdateCycle.HALF_YEARLY: 6,
                  UpdateCycle.YEARLY: 12}.get(cycle)
        if months is None:
            raise ValueError(f"update cycle {cycle.value} has no periods")
        month = (day.month - 1) // months * months + 1
        first = dt.date(day.year, month, 1)
        end_month = month + months - 1
        last = dt.date(day.year, end_month, calendar.monthrange(day.year, end_month)[1])
    return _start(first), _start(last + dt.timedelta(days=1))


def due_of(cycle: UpdateCycle, grace_days: int, period_end: dt.datetime) -> dt.datetime:
    return period_end + dt.timedelta(days=grace_days)


@dataclass(frozen=True)
class Obligation:
    """One line of the responsibility list: who provides which resource, how often, by when."""

    department_code: str
    resource_code: str
    resource_name: str
    update_cycle: UpdateCycle
    grace_days: int | None
    """Days after each period's end by which its delivery is due; None: the cycle's default."""
    contact: str = ""
    explicit: bool = False
    """Added by an administrator (rather than derived from the published catalog)."""
    since: dt.datetime | None = None
    """When the obligation started (the resource's first publication, or the explicit entry's date)."""
    provider_name: str = ""
    items: tuple[str, ...] = ()
    share_type: ShareType | None = None
    share_condition: str = ""

    @property
    def effective_grace_days(self) -> int | None:
        if self.grace_days is not None:
            return self.grace_days
        return DEFAULT_GRACE_DAYS.get(self.update_cycle)

    @property
    def due_rule(self) -> str:
        grace = self.effective_grace_days
        if grace is None:
            return "无固定周期（其他）"
        return f"{self.update_cycle.label}，周期结束后 {grace} 日内报送"


@dataclass(frozen=True)
class ComplianceStatus:
    compliance: Compliance
    last_delivery: dt.datetime | None
    next_due: dt.datetime | None
    overdue_by: dt.timedelta = dt.timedelta(0)
    """For OVERDUE and NEVER_DELIVERED: how late, from the first missed due time to now."""
    missed_periods: int = 0
    deliveries: int = 0


@dataclass(frozen=True)
class ObligationLine:
    """One line of the responsibility list (责任清单) as reported: the obligation and its compliance."""

    obligation: Obligation
    status: ComplianceStatus


MAX_PERIODS = 5000


def compliance(obligation: Obligation, deliveries: Sequence[dt.datetime], now: dt.datetime) -> ComplianceStatus:
    """On time, overdue (and how late), never delivered; the last delivery and the next due time.

    Each period of the update cycle needs a delivery between its start and its due time (the period's
    end plus the grace days). A delivery settles the earliest unsettled period whose window holds it.
    The state is that of the latest period already due: settled is ON_TIME; unsettled is OVERDUE, late
    since the due time of the first unsettled period of the current run (NEVER_DELIVERED when nothing
    ever arrived); a delivery after that due time ends the lateness (ON_TIME again). Missed periods stay
    counted: an unsettled month is a debt of the list.
    """
    ordered = sorted(d for d in deliveries if d <= now)
    last = ordered[-1] if ordered else None
    grace = obligation.effective_grace_days
    cycle = obligation.update_cycle
    if grace is None or cycle is UpdateCycle.OTHER:
        return ComplianceStatus(Compliance.UNSCHEDULED, last, None, deliveries=len(ordered))
    since = obligation.since or (ordered[0] if ordered else now)
    windows: list[tuple[dt.datetime, dt.datetime]] = []
    start, end = period_of(cycle, since)
    for _ in range(MAX_PERIODS):
        due = due_of(cycle, grace, end)
        windows.append((start, due))
        if due > now:
            break
        start, end = period_of(cycle, end)
    settled = [False] * len(windows)
    index = 0  # windows start and end in order, and so do deliveries: one pass settles them
    for delivery in ordered:
        while index < len(windows) and windows[index][1] < delivery:
            index += 1
        if index == len(windows):
            break
        if windows[index][0] <= delivery:
            settled[index] = True
            index += 1
    past_due = [i for i, (_, due) in enumerate(windows) if due <= now]
    upcoming = next((windows[i][1] for i in range(len(windows)) if not settled[i] and windows[i][1] > now), None)
    if upcoming is None:  # every window so far is settled: the next period's due time
        upcoming = due_of(cycle, grace, period_of(cycle, end)[1])
    missed = sum(1 for i in past_due if not settled[i])
    if not past_due:
        state = Compliance.ON_TIME if ordered else Compliance.NOT_YET_DUE
        return ComplianceStatus(state, last, upcoming, missed_periods=0, deliveries=len(ordered))
    latest = past_due[-1]
    if settled[latest] or (last is not None and last > windows[latest][1]):
        # Settled, or caught up: data arrived after the latest due time (it settled the current period).
        # No longer late; the missed periods stay counted.
        return ComplianceStatus(Compliance.ON_TIME, last, upcoming, missed_periods=missed, deliveries=len(ordered))
    run_start = latest
    while run_start > 0 and not settled[run_start - 1]:
        run_start -= 1
    late_since = windows[run_start][1]
    state = Compliance.OVERDUE if ordered else Compliance.NEVER_DELIVERED
    return ComplianceStatus(state, last, windows[run_start][1], now - late_since, missed, len(ordered))


def derived_obligations(resources: Iterable[Resource]) -> list[Obligation]:
    """A published resource's provider is responsible for it (不予共享 ones too: they are still reported)."""
    out = []
    for resource in resources:
        if resource.status is not ResourceStatus.PUBLISHED:
            continue
        meta = resource.latest.metadata
        first_published = min((v.published_at for v in resource.history if v.published_at), default=None)
        since = first_published or resource.latest.published_at
        out.append(Obligation(
            meta.provider_code, meta.code, meta.name, meta.update_cycle, None, since=since,
            provider_name=meta.provider_name, items=tuple(i.name for i in meta.items), share_type=meta.share_type,
            share_condition=meta.share_condition))
    return out


def merge_obligations(derived: Iterable[Obligation], explicit: Iterable[Obligation]) -> list[Obligation]:
    """Explicit entries override the derived line for the same department and resource."""
    lines = {(o.department_code, o.resource_code): o for o in derived}
    for entry in explicit:
        base = lines.get((entry.department_code, entry.resource_code))
        if base is not None:
            entry = replace(base, update_cycle=entry.update_cycle, grace_days=entry.grace_days,
                            contact=entry.contact or base.contact, explicit=True,
                            since=min((t for t in (entry.since, base.since) if t), default=None))
        lines[(entry.department_code, entry.resource_code)] = entry
    return sorted(lines.values(), key=lambda o: (o.department_code, o.resource_code))


# -- demands -------------------------------------------------------------------------------------------

class GrantKind(StrEnum):
    """What a grant lets its consumer do: receive copies (relay, pull, keyed queries), or only verify
    claims about records (核验: MATCH / MISMATCH per asserted item, never the stored value)."""

    COPY = "COPY"
    VERIFY = "VERIFY"


DEFAULT_DAILY_QUOTA = 1000
MAX_DAILY_QUOTA = 1_000_000
"""Verifications per grant and Beijing day: the quota is the enumeration defence (nobody may try every
name against an ID number), so a verification grant always has one."""


class DemandState(StrEnum):
    SUBMITTED = "SUBMITTED"
    COMPLIANCE_REVIEW = "COMPLIANCE_REVIEW"
    """合规审核: the node's competent department (政务数据主管部门, role ``coordinator``) checks it first."""
    UNDER_REVIEW = "UNDER_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    FULFILLED = "FULFILLED"
    WITHDRAWN = "WITHDRAWN"
    EXPIRED = "EXPIRED"
    DISPUTED = "DISPUTED"
    """争议协调中: the requester contested the provider's refusal (catalog/disputes.py)."""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text_problem(name: str, value: str, limit: int = MAX_TEXT) -> FieldProblem | None:
    if len(value) > limit:
        return FieldProblem(name, f"is {len(value)} characters, at most {limit}")
    if _CONTROL.search(value):
        return FieldProblem(name, "contains control characters")
    return None


OPEN_STATES = frozenset({DemandState.SUBMITTED, DemandState.COMPLIANCE_REVIEW, DemandState.UNDER_REVIEW})
STAGE_STATES = frozenset({DemandState.COMPLIANCE_REVIEW, DemandState.UNDER_REVIEW})
"""States in which a department owes an answer by a deadline (the others wait for the requester or are closed)."""
_TRANSITIONS: dict[str, frozenset[DemandState]] = {
    "match": frozenset({DemandState.SUBMITTED}),
    "review": frozenset({DemandState.COMPLIANCE_REVIEW}),
    "approve": frozenset({DemandState.UNDER_REVIEW}),
    "reject": frozenset({DemandState.UNDER_REVIEW}),
    "withdraw": OPEN_STATES,
    "expire": frozenset({DemandState.SUBMITTED}),
    "escalate": STAGE_STATES,
    "fulfil": frozenset({DemandState.APPROVED}),
}


@dataclass(frozen=True)
class Deadlines:
    """The node's time limits, in working days of its calendar (configurable per node)."""

    calendar: WorkingCalendar = field(default_factory=weekends_only)
    compliance_review: bool = False
    """Demands pass the competent department's compliance review (合规审核) before the provider's answer."""
    compliance_days: int = DEFAULT_COMPLIANCE_DAYS
    answer_days: int = DEFAULT_ANSWER_DAYS
    unpublished_answer_days: int = DEFAULT_UNPUBLISHED_ANSWER_DAYS
    submitted_days: int = DEFAULT_REVIEW_DAYS
    objection_days: int = DEFAULT_ANSWER_DAYS
    """校核纠错: the provider checks a record objected to within this many working days."""

    def compliance_due(self, now: dt.datetime) -> dt.datetime:
        return self.calendar.add_working_days(now, self.compliance_days)

    def answer_due(self, now: dt.datetime, on_platform: bool) -> dt.datetime:
        """5 working days; 10 when the provider has never delivered the resource's data to the platform."""
        return self.calendar.add_working_days(now, self.answer_days if on_platform else self.unpublished_answer_days)


@dataclass(frozen=True)
class DemandRequest:
    """What a department asks for: a resource code, or a description when it does not know the code."""

    requester_code: str
    resource_code: str = ""
    description: str = ""
    items: tuple[str, ...] = ()
    purpose: str = ""
    legal_basis: str = ""
    frequency: UpdateCycle | None = None
    contact: str = ""
    kind: GrantKind = GrantKind.COPY
    """VERIFY: a verification demand; its items are the items the requester may assert."""
    daily_quota: int = 0
    """VERIFY: verifications per day asked for (0: the default)."""

    def problems(self) -> list[FieldProblem]:
        problems = []
        if self.kind is GrantKind.VERIFY and not 0 <= self.daily_quota <= MAX_DAILY_QUOTA:
            problems.append(FieldProblem("daily_quota", f"{self.daily_quota} is not 0-{MAX_DAILY_QUOTA} (0: the "
                                                        f"default {DEFAULT_DAILY_QUOTA})"))
        if self.kind is GrantKind.COPY and self.daily_quota:
            problems.append(FieldProblem("daily_quota", "a quota belongs to a verification demand (kind VERIFY)"))
        if not self.resource_code and not self.description.strip():
            problems.append(FieldProblem("resource_code", "give a resource code, or a description to match"))
        for name, value, required in (("description", self.description, False), ("purpose", self.purpose, True),
                                      ("legal_basis", self.legal_basis, True), ("contact", self.contact, True)):
            if required and not value.strip():
                problems.append(FieldProblem(name, "is required"))
            elif len(value) > MAX_TEXT:
                problems.append(FieldProblem(name, f"is {len(value)} characters, at most {MAX_TEXT}"))
            elif _CONTROL.search(value):
                problems.append(FieldProblem(name, "contains control characters"))
        if len(self.items) > MAX_ITEMS:
            problems.append(FieldProblem("items", f"at most {MAX_ITEMS} items"))
        seen = set()
        for index, item in enumerate(self.items):
            if not item.strip():
                problems.append(FieldProblem(f"items[{index}]", "is empty"))
            elif len(item) > 100 or _CONTROL.search(item):
                problems.append(FieldProblem(f"items[{index}]", "is not an item name (at most 100 characters, no "
                                                                "control characters)"))
            elif item in seen:
                problems.append(FieldProblem(f"items[{index}]", f"duplicate item {item!r}"))
            seen.add(item)
        return problems


@dataclass(frozen=True)
class Demand:
    id: str
    request: DemandRequest
    state: DemandState
    created_at: dt.datetime
    updated_at: dt.datetime
    review_deadline: dt.datetime
    provider_code: str = ""
    resource_name: str = ""
    reason: str = ""
    decided_by: str = ""
    grant_id: str = ""
    version: int = 1
    """Optimistic concurrency: a change applies only to the version it was computed from."""
    compliance_deadline: dt.datetime | None = None
    compliance_at: dt.datetime | None = None
    compliance_by: str = ""
    answer_deadline: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    escalated_at: dt.datetime | None = None
    escalated_stage: str = ""
    """The stage (COMPLIANCE_REVIEW or UNDER_REVIEW) that was overdue when the demand was escalated to the
    coordinator; review_deadline is always the deadline of the stage the demand is in."""

    @property
    def requester_code(self) -> str:
        return self.request.requester_code

    @property
    def compliance_late(self) -> bool:
        return _late(self.compliance_deadline, self.compliance_at)

    @property
    def answer_late(self) -> bool:
        """The provider answered after its deadline: recorded as late, the answer still stands."""
        return _late(self.answer_deadline, self.answered_at)

    def overdue(self, now: dt.datetime) -> bool:
        """A stage is open past its deadline."""
        return self.state in STAGE_STATES and now >= self.review_deadline

    @property
    def resource_code(self) -> str:
        return self.request.resource_code


def _late(deadline: dt.datetime | None, done: dt.datetime | None) -> bool:
    return deadline is not None and done is not None and done >= deadline


def _require(demand: Demand, action: str) -> None:
    if demand.state not in _TRANSITIONS[action]:
        allowed = ", ".join(sorted(s.value for s in _TRANSITIONS[action]))
        raise IllegalTransition(demand.state.value, action, f"demand {demand.id} is {demand.state.value}; "
                                                            f"{action} needs {allowed}", what="demand")


def _check_items(request: DemandRequest, resource: Resource) -> list[FieldProblem]:
    names = {i.name for i in resource.latest.metadata.items}
    return [FieldProblem(f"items[{n}]", f"{item!r} is not an item of {resource.code} (items: {', '.join(sorted(names))})")
            for n, item in enumerate(request.items) if item not in names]


def match(demand: Demand, resource: Resource | None, now: dt.datetime, deadlines: Deadlines | None = None,
          on_platform: bool = True) -> Demand:
    """Link the demand to a published resource and decide by its share type: 不予共享 rejected citing the
    rule; with a compliance review, the others wait for the coordinator; without one, 无条件共享 is
    approved at once and 有条件共享 waits for the provider's reviewer, until its answer deadline."""
    deadlines = deadlines or Deadlines()
    _require(demand, "match")
    code = demand.request.resource_code
    if resource is None:
        raise InvalidField.one("resource_code", f"{code} is not in the catalog")
    if resource.status is not ResourceStatus.PUBLISHED:
        raise InvalidField.one("resource_code", f"{code} is {resource.status.value}: only a published resource can be "
                                                "demanded")
    meta = resource.latest.metadata
    problems = _check_items(demand.request, resource)
    if problems:
        raise InvalidField(problems)
    request = demand.request if demand.request.items else replace(demand.request, items=tuple(i.name for i in meta.items))
    base = replace(demand, request=request, provider_code=meta.provider_code, resource_name=meta.name,
                   updated_at=now, version=demand.version + 1)
    # 核验 answers match / no match and never hands out the record, so even a 不予共享 resource may be
    # verified: but only when the provider's reviewer grants it explicitly, as for 有条件共享.
    verify = demand.request.kind is GrantKind.VERIFY
    if not meta.share_type.leaves_the_node and not verify:
        basis = meta.share_condition or "未说明"
        return replace(base, state=DemandState.REJECTED, reason=f"不予共享：{basis}", decided_by="rule:不予共享")
    if deadlines.compliance_review:
        due = deadlines.compliance_due(now)
        return replace(base, state=DemandState.COMPLIANCE_REVIEW, compliance_deadline=due, review_deadline=due)
    if meta.share_type is ShareType.UNCONDITIONAL:
        return replace(base, state=DemandState.APPROVED, reason="无条件共享：自动批准", decided_by="rule:无条件共享")
    return _forward(base, deadlines.answer_due(now, on_platform))


def _forward(demand: Demand, answer_deadline: dt.datetime) -> Demand:
    return replace(demand, state=DemandState.UNDER_REVIEW, answer_deadline=answer_deadline,
                   review_deadline=answer_deadline)


def review_compliance(demand: Demand, coordinator: str, now: dt.datetime, *, passed: bool, reason: str,
                      share_type: ShareType, answer_deadline: dt.datetime) -> Demand:
    """合规审核 by the competent department: failed, the demand is rejected with the reason; passed, a
    无条件共享 demand is granted directly and a 有条件共享 one goes to the provider with its answer deadline.
    A review after its deadline is recorded as late; it still stands."""
    _require(demand, "review")
    problem = text_problem("reason", reason)
    if problem:
        raise InvalidField(problem)
    reviewed = replace(demand, compliance_at=now, compliance_by=coordinator, updated_at=now,
                       version=demand.version + 1)
    if not passed:
        if not reason.strip():
            raise InvalidField.one("reason", "a failed compliance review must give its reason (须说明理由)")
        return replace(reviewed, state=DemandState.REJECTED, reason=f"合规审核未通过：{reason}", decided_by=coordinator)
    if share_type is ShareType.UNCONDITIONAL:
        return replace(reviewed, state=DemandState.APPROVED, reason=reason or "合规审核通过：无条件共享，直接授权",
                       decided_by=coordinator)
    if not share_type.leaves_the_node:
        return replace(reviewed, state=DemandState.REJECTED, reason="不予共享", decided_by="rule:不予共享")
    return replace(_forward(reviewed, answer_deadline), reason=reason)


def file_demand(demand_id: str, request: DemandRequest, resource: Resource | None, now: dt.datetime,
                deadlines: Deadlines | None = None, on_platform: bool = True) -> Demand:
    """A new demand: matched at once when it names a resource, else SUBMITTED awaiting a match."""
    deadlines = deadlines or Deadlines()
    problems = request.problems()
    if problems:
        raise InvalidField(problems)
    demand = Demand(demand_id, request, DemandState.SUBMITTED, now, now,
                    now + dt.timedelta(days=deadlines.submitted_days))
    if request.resource_code:
        return match(demand, resource, now, deadlines, on_platform)
    return demand


def link(demand: Demand, resource_code: str, resource: Resource | None, now: dt.datetime,
         deadlines: Deadlines | None = None, on_platform: bool = True) -> Demand:
    """The requester picks the resource for a description-only demand (usually one of the suggestions).
    Items named in the requester's words (身份证号) become the resource's names (公民身份号码) when they
    are known synonyms, as the suggestion showed them."""
    from catalog.matching import same_item

    _require(demand, "match")
    items = demand.request.items
    if resource is not None and items:
        names = [i.name for i in resource.latest.metadata.items]
        items = tuple(next((n for n in names if same_item(item, n)), item) for item in items)
    request = replace(demand.request, resource_code=resource_code, items=items)
    return match(replace(demand, request=request), resource, now, deadlines, on_platform)


def approve(demand: Demand, reviewer: str, now: dt.datetime, reason: str = "") -> Demand:
    """The provider's answer: yes. After the answer deadline it is recorded as late, not refused."""
    _require(demand, "approve")
    return replace(demand, state=DemandState.APPROVED, reason=reason or "同意共享", decided_by=reviewer,
                   updated_at=now, answered_at=now, version=demand.version + 1)


def reject(demand: Demand, reviewer: str, reason: str, now: dt.datetime) -> Demand:
    _require(demand, "reject")
    if not reason.strip():
        raise InvalidField.one("reason", "a rejection must give its reason (拒绝须说明理由)")
    problem = text_problem("reason", reason)
    if problem:
        raise InvalidField(problem)
    return replace(demand, state=DemandState.REJECTED, reason=reason, decided_by=reviewer, updated_at=now,
                   answered_at=now, version=demand.version + 1)


def withdraw(demand: Demand, now: dt.datetime, reason: str = "") -> Demand:
    _require(demand, "withdraw")
    problem = text_problem("reason", reason)
    if problem:
        raise InvalidField(problem)
    return replace(demand, state=DemandState.WITHDRAWN, reason=reason or "需求方撤回", updated_at=now,
                   version=demand.version + 1)


def expire(demand: Demand, now: dt.datetime) -> Demand:
    """A description-only demand its requester never linked to a resource. Stages owed by a department
    are escalated instead (``escalate``): the regulation records a late answer, it does not drop it."""
    _require(demand, "expire")
    if now < demand.review_deadline:
        raise IllegalTransition(demand.state.value, "expire", f"its review deadline is {demand.review_deadline}",
                                what="demand")
    return replace(demand, state=DemandState.EXPIRED, reason=f"未在期限 {demand.review_deadline:%Y-%m-%d} 前处理",
                   updated_at=now, version=demand.version + 1)


def escalate(demand: Demand, now: dt.datetime) -> Demand:
    """A stage past its deadline goes to the coordinator (once per stage); the demand stays open."""
    _require(demand, "escalate")
    if now < demand.review_deadline:
        raise IllegalTransition(demand.state.value, "escalate", f"its deadline is {demand.review_deadline}",
                                what="demand")
    if demand.escalated_stage == demand.state.value:
        raise IllegalTransition(demand.state.value, "escalate", f"demand {demand.id} was escalated at "
                                f"{demand.escalated_at}", what="demand")
    return replace(demand, escalated_at=now, escalated_stage=demand.state.value, updated_at=now,
                   version=demand.version + 1)


def fulfil(demand: Demand, now: dt.datetime) -> Demand:
    """销账: the first delivery reached the requester."""
    _require(demand, "fulfil")
    return replace(demand, state=DemandState.FULFILLED, updated_at=now, version=demand.version + 1)


# -- grants --------------------------------------------------------------------------------------------

_RULE = re.compile(r"keep:(\d{1,3}),(\d{1,3})|hide|drop|hash")


def masking_rule_problem(rule: str) -> str | None:
    if _RULE.fullmatch(rule):
        return None
    return f"unknown masking rule {rule!r} (keep:FIRST,LAST | hide | drop | hash)"


DEFAULT_MASKING: tuple[tuple[str, str], ...] = (
    ("身份证", "keep:6,4"), ("公民身份号码", "keep:6,4"), ("证件号码", "keep:6,4"),
    ("手机", "keep:3,4"), ("电话", "keep:3,4"), ("联系方式", "keep:3,4"),
    ("银行账号", "keep:4,4"), ("银行卡", "keep:4,4"), ("账号", "keep:4,4"),
    ("住址", "keep:6,0"), ("地址", "keep:6,0"),
)
"""Personal identifiers are masked unless the approval says otherwise (DESIGN.md §8)."""


def default_masking(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        for needle, rule in DEFAULT_MASKING:
            if needle in item:
                out[item] = rule
                break
    return out


@dataclass(frozen=True)
class Grant:
    id: str
    consumer_code: str
    provider_code: str
    resource_code: str
    items: tuple[str, ...]
    expires_at: dt.datetime
    masking: Mapping[str, str] = field(default_factory=dict)
    demand_id: str = ""
    created_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoked_reason: str = ""
    clear_delivery: bool = False
    """明文交付: the consumer may get records in clear when it registered no encryption key. Without it, a
    consumer with no key gets nothing relayed (the ingest's audit entry says it was withheld)."""
    kind: GrantKind = GrantKind.COPY
    daily_quota: int = 0
    """VERIFY: verifications allowed per Beijing day."""
    purpose: str = ""
    legal_basis: str = ""

    def live(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "REVOKED"
        return "ACTIVE" if now < self.expires_at else "EXPIRED"


def grant_for(grant_id: str, demand: Demand, now: dt.datetime, *, expires_at: dt.datetime | None = None,
              masking: Mapping[str, str] | None = None, items: Sequence[str] | None = None,
              clear_delivery: bool = False) -> Grant:
    """The grant an approval creates: the demanded items (or a subset the reviewer chose)."""
    chosen = tuple(items) if items else demand.request.items
    problems = [FieldProblem(f"items[{n}]", f"{item!r} was not demanded") for n, item in enumerate(chosen)
                if item not in demand.request.items]
    expiry = expires_at or now + dt.timedelta(days=DEFAULT_GRANT_DAYS)
    if expiry <= now:
        problems.append(FieldProblem("expires_at", "must be in the future"))
    rules = dict(default_masking(chosen) if masking is None else masking)
    for item, rule in rules.items():
        if item not in chosen:
            problems.append(FieldProblem(f"masking[{item}]", "is not a granted item"))
        problem = masking_rule_problem(rule)
        if problem:
            problems.append(FieldProblem(f"masking[{item}]", problem))
    if problems:
        raise InvalidField(problems)
    request = demand.request
    if request.kind is GrantKind.VERIFY:
        rules = {}  # a verification grant hands out no values: nothing to mask
    return Grant(grant_id, demand.requester_code, demand.provider_code, demand.resource_code, chosen, expiry, rules,
                 demand.id, now, clear_delivery=clear_delivery, kind=request.kind,
                 daily_quota=(request.daily_quota or DEFAULT_DAILY_QUOTA) if request.kind is GrantKind.VERIFY else 0,
                 purpose=request.purpose, legal_basis=request.legal_basis)


def revoke(grant: Grant, reason: str, now: dt.datetime) -> Grant:
    if grant.revoked_at is not None:
        raise IllegalTransition("REVOKED", "revoke", f"grant {grant.id} was revoked at {grant.revoked_at}",
                                what="grant")
    if not reason.strip():
        raise InvalidField.one("reason", "a revocation must give its reason")
    problem = text_problem("reason", reason)
    if problem:
        raise InvalidField(problem)
    return replace(grant, revoked_at=now, revoked_reason=reason)
