"""The lists' use cases: responsibility list with compliance, demands and their workflow, grants.

Each change is one unit of work, authorised by the policy; the gRPC interceptor audits every call.
The application also answers the policy's grant question (``grant_decision``), so subscriptions and
pulls are decided against the live grants in the database.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from catalog import lists as domain
from catalog.codes import credit_code_problem
from catalog.disputes import Dispute
from catalog.errors import Conflict, IllegalTransition, InvalidField, NotFound
from catalog.lists import (
    Demand,
    DemandRequest,
    DemandState,
    Grant,
    Obligation,
    ObligationLine,
)
from catalog.matching import Suggestion, suggest
from catalog.model import Resource, ResourceStatus, UpdateCycle
from catalog.workdays import WorkingCalendar, beijing_date, start_of
from node.files import lists as lists_files
from node.services.caches import GenerationCache
from node.storage.catalog_repository import ResourceFilter
from node.storage.lists_repository import DeliveryRow, DemandFilter, GrantFilter, StaleDemand
from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from security.identity import Principal
from security.policy import Action, Decision, PermissionDenied, Policy, Target

Clock = Callable[[], dt.datetime]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_DUE = 10_000
LISTS = Target("lists")


@dataclass(frozen=True)
class Page:
    rows: list
    next_page_token: str


def page_of(rows: list, size: int, scope: str, key: Callable[[Any], str] = lambda row: row.id) -> Page:
    """A page of ``size`` rows read with one more (which says whether there is a next page)."""
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, _token(key(rows[-1]), scope) if more else "")


def _new_id(prefix: str, now: dt.datetime) -> str:
    return f"{prefix}-{now.astimezone(domain.BEIJING):%Y%m%d}-{uuid.uuid4().hex[:8].upper()}"


def _token(after: str, scope: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after, "scope": scope}).encode()).decode()


def _after(token: str, scope: str) -> str:
    if not token:
        return ""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["scope"] != scope:
            raise ValueError
        return str(data["after"])
    except (ValueError, KeyError, TypeError):
        raise InvalidField.one("page_token", "is not a page token of this query") from None


def _department(code: str, field: str = "department_code") -> str:
    """An optional department filter or argument: empty, or a valid 统一社会信用代码."""
    if code and credit_code_problem(code):
        raise InvalidField.one(field, f"{code!r} is not a 统一社会信用代码: {credit_code_problem(code)}")
    return code


def _page_size(size: int) -> int:
    if size > MAX_PAGE_SIZE:
        raise InvalidField.one("page_size", f"{size} is more than the maximum {MAX_PAGE_SIZE}")
    return size or DEFAULT_PAGE_SIZE


def _published(uow: UnitOfWork, provider_code: str = "") -> list[Resource]:
    return uow.catalog.all(ResourceFilter(status=ResourceStatus.PUBLISHED, provider_code=provider_code))


Delivery = tuple[str, str, str, str, int]
"""(provider, resource, consumer or "" for a receipt from the provider, batch id, records)."""


def record_deliveries(uow: UnitOfWork, deliveries: Sequence[Delivery], now: dt.datetime) -> list[Demand]:
    """Deliveries inside the caller's transaction (the dispatcher records a flush of confirms at once):
    one row each, and a first delivery to a requester closes its approved demands (销账)."""
    fulfilled = []
    for provider, resource, consumer, batch_id, records in deliveries:
        uow.lists.add_delivery(provider, resource, consumer, now, batch_id, records)
    for consumer, resource in sorted({(d[2], d[1]) for d in deliveries if d[2]}):
        for demand in uow.lists.approved_demands(consumer, resource):
            done = domain.fulfil(demand, now)
            uow.lists.save_demand(done, demand.version)
            fulfilled.append(done)
    return fulfilled


def _with_metadata(uow: UnitOfWork, obligation: Obligation) -> Obligation:
    """An explicit line for a resource its department does not provide: name the resource's metadata."""
    resource = uow.catalog.get(obligation.resource_code)
    if resource is None:
        return obligation
    meta = resource.latest.metadata
    return replace(obligation, provider_name=meta.provider_name, items=tuple(i.name for i in meta.items),
                   share_type=meta.share_type, share_condition=meta.share_condition)


@dataclass(frozen=True)
class StageTimeliness:
    """One stage's answers and open cases (时效统计): on time, late, open within / past the deadline."""

    stage: str
    on_time: int = 0
    late: int = 0
    open_within: int = 0
    open_overdue: int = 0

    @property
    def answered(self) -> int:
        return self.on_time + self.late


def timeliness_of(demands: Sequence[Demand], now: dt.datetime) -> list[StageTimeliness]:
    """Per stage (COMPLIANCE_REVIEW, UNDER_REVIEW): how its answers kept their deadlines."""
    out = []
    for stage, deadline_of, done_of in (
            (DemandState.COMPLIANCE_REVIEW, lambda d: d.compliance_deadline, lambda d: d.compliance_at),
            (DemandState.UNDER_REVIEW, lambda d: d.answer_deadline, lambda d: d.answered_at)):
        counts = {"on_time": 0, "late": 0, "open_within": 0, "open_overdue": 0}
        for demand in demands:
            deadline, done = deadline_of(demand), done_of(demand)
            if deadline is None:
                continue
            if done is not None:
                counts["late" if done >= deadline else "on_time"] += 1
            elif demand.state is stage:
                counts["open_overdue" if now >= deadline else "open_within"] += 1
        out.append(StageTimeliness(stage.value, **counts))
    return out


class TierDemands(Protocol):
    """What the lists need of the tier link for 回流 (``node.pipeline.tiers.TierApplication``)."""

    def forward(self, uow: UnitOfWork, demand: Demand, resource: Resource, now: dt.datetime) -> bool: ...

    def forwarded_to(self, uow: UnitOfWork, demand_id: str) -> str: ...

    def decided(self, uow: UnitOfWork, demand: Demand, now: dt.datetime) -> None: ...

    def changed(self, uow: UnitOfWork, demand: Demand, change: str, text: str, by: str, now: dt.datetime) -> None: ...

    def dispute_step(self, uow: UnitOfWork, dispute: Dispute, demand: Demand, now: dt.datetime) -> None: ...


GrantsReader = Callable[[str, str, domain.GrantKind], Sequence[Grant]]
"""(consumer, resource, kind) → that consumer's grants of the kind for the resource."""


class GrantsAt:
    """The grant decisions of one request (``security.policy.GrantLookup``), read through the grant cache at
    the generation the request read in its transaction, or in that transaction when the cache does not hold."""

    def __init__(self, lists: ListsApplication, uow: UnitOfWork, generation: int | None) -> None:
        self.lists = lists
        self.uow = uow
        self.generation = generation

    def read(self, consumer_code: str, resource_code: str, kind: domain.GrantKind) -> Sequence[Grant]:
        uow = self.uow
        return self.lists.grant_cache.get((consumer_code, resource_code, kind.value), self.generation,
                                          lambda: tuple(uow.lists.grants_for(consumer_code, resource_code, kind)))

    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        return self.lists._grant_decision(self.read, department_code, resource_code)

    def verification_decision(self, department_code: str, resource_code: str) -> Decision:
        return self.lists._verification_decision(self.read, department_code, resource_code)


class ListsApplication:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy,
                 deadlines: domain.Deadlines | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.deadlines = deadlines or domain.Deadlines()
        self.grant_cache: GenerationCache[Sequence[Grant]] = GenerationCache()
        """Grants by (consumer, resource, kind) at a ``cache_generations`` counter: read by VerifyClaim and
        QueryRecords, which read the counter in their own transaction (``grants_at``)."""
        self.tiers: TierDemands | None = None
        """Set when the node has tier links: a demand for a resource of the upper node is forwarded there
        and decided by its reviewer; one a lower node forwarded here sends its answer down."""

    @property
    def calendar(self) -> WorkingCalendar:
        return self.deadlines.calendar

    # -- responsibility list ----------------------------------------------------------------------------
    def obligations(self, principal: Principal, department_code: str = "",
                    compliance: domain.Compliance | None = None) -> list[ObligationLine]:
        """The responsibility list (one department's, or the node's) with each line's compliance now."""
        self.policy.require(principal, Action.LISTS_READ, LISTS)
        _department(department_code)
        now = self.clock()
        with self.uow() as uow:
            derived = domain.derived_obligations(_published(uow, department_code))
            lines = domain.merge_obligations(derived, uow.lists.explicit_obligations(department_code))
            out = []
            for obligation in lines:
                if obligation.explicit and not obligation.items:
                    obligation = _with_metadata(uow, obligation)
                times = uow.lists.delivery_times(obligation.department_code, obligation.resource_code)
                status = domain.compliance(obligation, times, now)
                if compliance is None or status.compliance is compliance:
                    out.append(ObligationLine(obligation, status))
        return out

    def add_obligation(self, principal: Principal, department_code: str, resource_code: str,
                       update_cycle: UpdateCycle | None, grace_days: int | None, contact: str) -> Obligation:
        """An explicit line: a department made responsible for a resource (or its cycle, due rule or contact
        changed) by an administrator."""
        _department(department_code)
        if not department_code:
            raise InvalidField.one("department_code", "is required")
        self.policy.require(principal, Action.OBLIGATION_WRITE, Target.department(department_code))
        problem = domain.text_problem("contact", contact, 200)
        if problem:
            raise InvalidField(problem)
        if grace_days is not None and not 0 <= grace_days <= 366:
            raise InvalidField.one("grace_days", f"{grace_days} is not 0-366 days")
        now = self.clock()
        with self.uow(write=True) as uow:
            resource = uow.catalog.get(resource_code)
            if resource is None:
                raise NotFound("resource", resource_code)
            if resource.status is ResourceStatus.RETIRED:
                raise IllegalTransition(resource.status.value, "add an obligation for",
                                        f"{resource_code} is retired", what="resource")
            meta = resource.latest.metadata
            obligation = Obligation(department_code, resource_code, meta.name, update_cycle or meta.update_cycle,
                                    grace_days, contact, explicit=True, since=now, provider_name=meta.provider_name,
                                    items=tuple(i.name for i in meta.items), share_type=meta.share_type,
                                    share_condition=meta.share_condition)
            uow.lists.put_obligation(obligation, principal.subject, now)
            uow.commit()
        return obligation

    def record_delivery(self, provider_code: str, resource_code: str, consumer_code: str, batch_id: str,
                        records: int, at: dt.datetime | None = None) -> list[Demand]:
        """The exchange pipeline's report: records received from a provider (``consumer_code`` empty) or
        delivered to a consumer. A first delivery to a requester closes its approved demands (销账)."""
        now = at or self.clock()
        with self.uow(write=True) as uow:
            fulfilled = record_deliveries(uow, [(provider_code, resource_code, consumer_code, batch_id, records)], now)
            uow.commit()
        return fulfilled

    # -- demands ----------------------------------------------------------------------------------------
    def file_demand(self, principal: Principal, request: DemandRequest,
                    on_filed: Callable[[UnitOfWork, Demand], None] | None = None) -> Demand:
        """``on_filed``: more writes in the same transaction (the tier link records a forwarded demand)."""
        request = replace(request, requester_code=principal.department_code)
        self.policy.require(principal, Action.DEMAND_FILE, Target.demand("", principal.department_code, ""))
        now = self.clock()
        with self.uow(write=True) as uow:
            resource = uow.catalog.get(request.resource_code) if request.resource_code else None
            if request.resource_code and resource is None:
                raise NotFound("resource", request.resource_code)
            demand = domain.file_demand(_new_id("XQ", now), request, resource, now, self.deadlines,
                                        self._on_platform(uow, resource))
            demand = self._forward_if_foreign(uow, demand, resource, now)
            demand = self.grant_if_approved(uow, demand, now)
            uow.lists.add_demand(demand)
            if on_filed is not None:
                on_filed(uow, demand)
            uow.commit()
        return demand

    def link_demand(self, principal: Principal, demand_id: str, resource_code: str) -> Demand:
        """The requester names the resource of a description-only demand (usually a suggestion)."""
        now = self.clock()
        with self.uow(write=True) as uow:
            demand = self.load(uow, demand_id)
            self.policy.require(principal, Action.DEMAND_CHANGE, self.target(demand))
            resource = uow.catalog.get(resource_code)
            if resource is None:
                raise NotFound("resource", resource_code)
            linked = domain.link(demand, resource_code, resource, now, self.deadlines, self._on_platform(uow, resource))
            linked = self._forward_if_foreign(uow, linked, resource, now)
            changed = self.grant_if_approved(uow, linked, now)
            self.save(uow, changed, demand)
            uow.commit()
        return changed

    def decide(self, principal: Principal, demand_id: str, approve: bool, reason: str = "", *,
               expires_at: dt.datetime | None = None, items: Sequence[str] = (),
               masking: Mapping[str, str] | None = None, clear_delivery: bool = False) -> Demand:
        """A reviewer of the providing department approves (creating the grant) or rejects with a reason.
        Of two reviewers deciding at once exactly one wins; the other is told the demand's new state."""
        now = self.clock()
        with self.uow(write=True) as uow:
            demand = self.load(uow, demand_id)
            self.policy.require(principal, Action.DEMAND_DECIDE, self.target(demand))
            upper = self.tiers.forwarded_to(uow, demand.id) if self.tiers is not None else ""
            if upper:
                raise IllegalTransition(demand.state.value, "decide", f"demand {demand.id} was forwarded to node "
                                        f"{upper}, whose reviewer decides it (回流)", what="demand")
            if approve:
                decided = domain.approve(demand, principal.subject, now, reason)
                decided = self.grant_if_approved(uow, decided, now, expires_at=expires_at, items=items,
                                                  masking=masking, clear_delivery=clear_delivery)
            else:
                decided = domain.reject(demand, principal.subject, reason, now)
            self.save(uow, decided, demand)
            if self.tiers is not None:
                self.tiers.decided(uow, decided, now)
            uow.commit()
        return decided

    def review(self, principal: Principal, demand_id: str, passed: bool, reason: str = "") -> Demand:
        """合规审核 by the node's coordinator: rejected with the reason, granted directly (无条件共享) or
        forwarded to the provider with its answer deadline in working days (有条件共享)."""
        now = self.clock()
        with self.uow(write=True) as uow:
            demand = self.load(uow, demand_id)
            self.policy.require(principal, Action.DEMAND_REVIEW, self.target(demand))
            resource = uow.catalog.get(demand.resource_code)
            if resource is None:
                raise NotFound("resource", demand.resource_code)
            share_type = resource.latest.metadata.share_type
            reviewed = domain.review_compliance(
                demand, principal.subject, now, passed=passed, reason=reason, share_type=share_type,
                answer_deadline=self.deadlines.answer_due(now, self._on_platform(uow, resource)))
            reviewed = self._forward_if_foreign(uow, reviewed, resource, now)
            reviewed = self.grant_if_approved(uow, reviewed, now)
            self.save(uow, reviewed, demand)
            uow.commit()
        return reviewed

    def withdraw(self, principal: Principal, demand_id: str, reason: str = "") -> Demand:
        now = self.clock()
        with self.uow(write=True) as uow:
            demand = self.load(uow, demand_id)
            self.policy.require(principal, Action.DEMAND_CHANGE, self.target(demand))
            changed = domain.withdraw(demand, now, reason)
            self.save(uow, changed, demand)
            if self.tiers is not None and self.tiers.forwarded_to(uow, demand.id):  # the deciding node is told
                self.tiers.changed(uow, changed, "WITHDRAW", changed.reason, principal.subject, now)
            uow.commit()
        return changed

    def expire_overdue(self) -> list[Demand]:
        """Description-only demands their requester never linked before the deadline become EXPIRED
        (run by the node daily). Stages a department owes are escalated instead (``escalate_overdue``)."""
        now = self.clock()
        expired = []
        with self.uow(write=True) as uow:
            for demand in uow.lists.open_demands_due(now, frozenset({DemandState.SUBMITTED})):
                changed = domain.expire(demand, now)
                uow.lists.save_demand(changed, demand.version)
                expired.append(changed)
            uow.commit()
        return expired

    def escalate_overdue(self) -> list[Demand]:
        """Stages open past their deadline go to the coordinator, once per stage (run by the node daily);
        the demand stays open and a late answer is still taken, recorded as late."""
        now = self.clock()
        escalated = []
        with self.uow(write=True) as uow:
            for demand in uow.lists.open_demands_due(now, domain.STAGE_STATES):
                if demand.escalated_stage == demand.state.value:
                    continue
                changed = domain.escalate(demand, now)
                uow.lists.save_demand(changed, demand.version)
                escalated.append(changed)
            uow.commit()
        return escalated

    def falling_due(self, principal: Principal, day: dt.date | None = None) -> list[Demand]:
        """提醒: the demands whose open stage's last day is ``day`` (default: tomorrow, Beijing time), as the
        caller may see them."""
        self.policy.require(principal, Action.LISTS_READ, LISTS)
        if day is None:
            day = beijing_date(self.clock()) + dt.timedelta(days=1)
        flt = DemandFilter(visible_to=self.policy.lists_visibility(principal), due_after=start_of(day),
                           due_before=start_of(day + dt.timedelta(days=1)))
        with self.uow() as uow:
            return uow.lists.list_demands(flt, after_id="", limit=MAX_DUE)

    def timeliness(self, principal: Principal, start: dt.datetime | None = None, end: dt.datetime | None = None,
                   department_code: str = "") -> list[StageTimeliness]:
        """How the stages of the demands filed in [start, end) kept their deadlines (the node's, or the
        demands one department filed or provides)."""
        self.policy.require(principal, Action.LISTS_READ, LISTS)
        _department(department_code)
        visible = self.policy.lists_visibility(principal)
        if department_code and visible not in (None, department_code):
            self.policy.require(principal, Action.DEMAND_READ, Target.demand("*", department_code, ""))
        scope = department_code or visible
        with self.uow() as uow:
            found = uow.lists.demands_between(start, end)
        if scope:
            found = [d for d in found if scope in (d.requester_code, d.provider_code)]
        return timeliness_of(found, self.clock())

    def get_demand(self, principal: Principal, demand_id: str) -> Demand:
        with self.uow() as uow:
            demand = self.load(uow, demand_id)
        self.policy.require(principal, Action.DEMAND_READ, self.target(demand))
        return demand

    def list_demands(self, principal: Principal, flt: DemandFilter, page_size: int = 0, page_token: str = ""
                     ) -> Page:
        self.policy.require(principal, Action.LISTS_READ, LISTS)
        flt = replace(flt, visible_to=self.policy.lists_visibility(principal))
        size = _page_size(page_size)
        scope = repr(flt)
        with self.uow() as uow:
            rows = uow.lists.list_demands(flt, after_id=_after(page_token, scope), limit=size + 1)
        return page_of(rows, size, scope)

    def suggestions(self, principal: Principal, description: str, items: Sequence[str], limit: int = 10
                    ) -> list[Suggestion]:
        self.policy.require(principal, Action.CATALOG_READ, Target("catalog"))
        if not description.strip() and not items:
            raise InvalidField.one("description", "give a description or items to match")
        if len(description) > domain.MAX_TEXT:
            raise InvalidField.one("description", f"at most {domain.MAX_TEXT} characters")
        with self.uow() as uow:
            resources = _published(uow)
        return suggest(description, items, resources, limit=max(1, min(limit, 50)))

    def deliveries(self, principal: Principal, limit: int = 50) -> list[DeliveryRow]:
        """A department's newest deliveries, sent and received, with their receipts (the node's department
        and operators see every department's)."""
        self.policy.require(principal, Action.LISTS_READ, LISTS)
        with self.uow() as uow:
            return uow.lists.recent_deliveries(self.policy.lists_visibility(principal), max(1, min(limit, 500)))

    # -- grants -----------------------------------------------------------------------------------------
    def list_grants(self, principal: Principal, flt: GrantFilter, page_size: int = 0, page_token: str = ""
                    ) -> Page:
        self.policy.require(principal, Action.LISTS_READ, LISTS)
        flt = replace(flt, visible_to=self.policy.lists_visibility(principal))
        size = _page_size(page_size)
        scope = repr(flt)
        with self.uow() as uow:
            rows = uow.lists.list_grants(flt, after_id=_after(page_token, scope), limit=size + 1)
        return page_of(rows, size, scope)

    def revoke_grant(self, principal: Principal, grant_id: str, reason: str) -> Grant:
        now = self.clock()
        with self.uow(write=True) as uow:
            grant = uow.lists.get_grant(grant_id)
            if grant is None:
                raise NotFound("grant", grant_id)
            self.policy.require(principal, Action.GRANT_REVOKE,
                                Target.grant(grant.id, grant.consumer_code, grant.provider_code))
            revoked = domain.revoke(grant, reason, now)
            try:
                uow.lists.revoke_grant(revoked)
            except StaleDemand:
                raise IllegalTransition("REVOKED", "revoke", f"grant {grant_id} was revoked meanwhile",
                                        what="grant") from None
            uow.commit()
        return revoked

    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        """The policy's question: does the department hold a live grant for the resource? Expired and
        revoked grants are named in the refusal, so the caller knows what to renew."""
        with self.uow() as uow:
            return self._grant_decision(uow.lists.grants_for, department_code, resource_code)

    def verification_decision(self, department_code: str, resource_code: str) -> Decision:
        """The policy's question for 核验: a live verification grant (kind VERIFY), or why not (naming an
        expired or revoked one, and a copy grant that does not allow verification)."""
        with self.uow() as uow:
            return self._verification_decision(uow.lists.grants_for, department_code, resource_code)

    def grants_at(self, uow: UnitOfWork, generation: int | None) -> GrantsAt:
        """One request's grant decisions: from the grant cache at the counter the request read in ``uow``
        (``node.services.caches``), else read in ``uow``."""
        return GrantsAt(self, uow, generation)

    def _grant_decision(self, read: GrantsReader, department_code: str, resource_code: str) -> Decision:
        now = self.clock()
        found = read(department_code, resource_code, domain.GrantKind.COPY)
        live = [g for g in found if g.live(now)]
        if live:
            return Decision(True, f"grant {live[0].id} (until {live[0].expires_at:%Y-%m-%d})",
                            max(live, key=lambda g: g.expires_at))
        if not found:
            return Decision(False, f"department {department_code} holds no grant for {resource_code}")
        latest = max(found, key=lambda g: g.expires_at)
        if latest.revoked_at is not None:
            return Decision(False, f"grant {latest.id} for {resource_code} was revoked at "
                                   f"{latest.revoked_at:%Y-%m-%d %H:%M}: {latest.revoked_reason}")
        return Decision(False, f"grant {latest.id} for {resource_code} expired at {latest.expires_at:%Y-%m-%d %H:%M}")

    def _verification_decision(self, read: GrantsReader, department_code: str, resource_code: str) -> Decision:
        now = self.clock()
        found = read(department_code, resource_code, domain.GrantKind.VERIFY)
        copies = [] if found else read(department_code, resource_code, domain.GrantKind.COPY)
        live = [g for g in found if g.live(now)]
        if live:
            best = max(live, key=lambda g: g.expires_at)
            return Decision(True, f"verification grant {best.id} (until {best.expires_at:%Y-%m-%d})", best)
        if not found:
            hint = f" (grant {copies[0].id} is a copy grant, not a verification grant)" if copies else ""
            return Decision(False, f"department {department_code} holds no verification grant for "
                                   f"{resource_code}{hint}")
        latest = max(found, key=lambda g: g.expires_at)
        if latest.revoked_at is not None:
            return Decision(False, f"verification grant {latest.id} for {resource_code} was revoked at "
                                   f"{latest.revoked_at:%Y-%m-%d %H:%M}: {latest.revoked_reason}")
        return Decision(False, f"verification grant {latest.id} for {resource_code} expired at "
                               f"{latest.expires_at:%Y-%m-%d %H:%M}")

    def live_grant(self, principal: Principal, resource_code: str, action: Action,
                   kind: domain.GrantKind = domain.GrantKind.COPY, grants: GrantsAt | None = None) -> Grant:
        """The grant a subscription or pull uses; PermissionDenied (naming an expired or revoked grant) if
        none is live. ``grants``: the request's view of the grant cache (``grants_at``)."""
        decision = self.policy.require(principal, action, Target("resource", resource_code), grants)
        now = self.clock()
        grant = decision.grant
        if isinstance(grant, Grant) and grant.kind is kind and grant.resource_code == resource_code \
                and grant.consumer_code == principal.department_code and grant.live(now):
            return grant  # the decision read the grants a moment ago: the same answer as reading them again
        if grants is not None:
            found = grants.read(principal.department_code, resource_code, kind)
        else:
            with self.uow() as uow:
                found = uow.lists.grants_for(principal.department_code, resource_code, kind)
        live = [g for g in found if g.live(now)]
        if not live:
            lookup = grants or self
            decide = lookup.verification_decision if kind is domain.GrantKind.VERIFY else lookup.grant_decision
            raise PermissionDenied(action, Target("resource", resource_code),
                                   decide(principal.department_code, resource_code).reason)
        return max(live, key=lambda g: g.expires_at)

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _on_platform(uow: UnitOfWork, resource: Resource | None) -> bool:
        """Whether the resource's data is on the platform: its provider has delivered records of it here
        (else the provider has the longer answer limit, 10 working days)."""
        if resource is None:
            return True
        return uow.lists.has_received(resource.latest.metadata.provider_code, resource.code)

    @staticmethod
    def target(demand: Demand) -> Target:
        return Target.demand(demand.id, demand.requester_code, demand.provider_code)

    @staticmethod
    def load(uow: UnitOfWork, demand_id: str) -> Demand:
        if not demand_id:
            raise InvalidField.one("id", "is required")
        demand = uow.lists.get_demand(demand_id)
        if demand is None:
            raise NotFound("demand", demand_id)
        return demand

    @staticmethod
    def save(uow: UnitOfWork, changed: Demand, before: Demand) -> None:
        try:
            uow.lists.save_demand(changed, before.version)
        except StaleDemand:
            uow.restart()
            now = uow.lists.get_demand(before.id)
            state = now.state.value if now else "gone"
            by = f" by {now.decided_by}" if now and now.decided_by else ""
            raise Conflict(f"demand {before.id} was changed meanwhile: it is now {state}{by}") from None

    def _forward_if_foreign(self, uow: UnitOfWork, demand: Demand, resource: Resource | None, now: dt.datetime
                            ) -> Demand:
        """回流: a demand for a resource of the upper node (its entry came down the tier link) that the rules
        here let through goes up to be decided there; it waits here for the answer (no grant yet)."""
        if self.tiers is None or resource is None or not resource.origin_node \
                or demand.state not in (DemandState.UNDER_REVIEW, DemandState.APPROVED):
            return demand
        if not self.tiers.forward(uow, demand, resource, now):
            return demand
        due = self.deadlines.answer_due(now, True)
        return replace(demand, state=DemandState.UNDER_REVIEW, reason="", decided_by="", answered_at=None,
                       answer_deadline=due, review_deadline=due)

    def grant_if_approved(self, uow: UnitOfWork, demand: Demand, now: dt.datetime, **options: object) -> Demand:
        if demand.state is not DemandState.APPROVED or demand.grant_id:
            return demand
        grant = domain.grant_for(_new_id("SQ", now), demand, now, **options)  # type: ignore[arg-type]
        uow.lists.add_grant(grant)
        return replace(demand, grant_id=grant.id)


LIST_KINDS = ("responsibilities", "demands")
FORMATS = ("csv", "xml")


def export_list(app: ListsApplication, principal: Principal, kind: str, fmt: str, department_code: str = ""
                ) -> tuple[bytes, str]:
    """One list as a file for reporting upward: the whole node's (its own department or an operator) or
    one department's. Returns the content and a file name."""
    if kind not in LIST_KINDS:
        raise InvalidField.one("list", f"unknown list {kind!r} (responsibilities or demands)")
    if fmt not in FORMATS:
        raise InvalidField.one("format", f"unknown format {fmt!r} (csv or xml)")
    _department(department_code)
    if department_code:
        if kind == "demands" and app.policy.lists_visibility(principal) not in (None, department_code):
            app.policy.require(principal, Action.DEMAND_READ, Target.demand("*", department_code, ""))
    else:
        app.policy.require(principal, Action.LISTS_EXPORT_ALL, LISTS)
    now = app.clock()
    if kind == "responsibilities":
        lines = app.obligations(principal, department_code)
        content = lists_files.responsibilities(lines, fmt, now, department_code)
    else:
        flt = DemandFilter(department_code=department_code)
        demands: list[Demand] = []
        token = ""
        while True:
            page = app.list_demands(principal, flt, MAX_PAGE_SIZE, token)
            demands.extend(page.rows)
            token = page.next_page_token
            if not token:
                break
        with app.uow() as uow:
            disputes = uow.lists.disputes_by_demand([d.id for d in demands])
        content = lists_files.demands(demands, fmt, now, department_code, disputes)
    scope = department_code or "node"
    return content, f"{'责任清单' if kind == 'responsibilities' else '需求清单'}-{scope}-{now:%Y%m%d}.{fmt}"
