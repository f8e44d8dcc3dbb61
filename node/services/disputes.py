"""争议协调's use cases: contest a provider's refusal, the provider's answer, the coordinator's decision.

Each step is one unit of work that changes the dispute and its demand together (a grant, when the
outcome is one, in the same transaction), authorised by the policy; the gRPC interceptor audits every
call and the daily job audits the escalations it makes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from catalog import disputes as domain
from catalog.disputes import Dispute, DisputeState
from catalog.errors import Conflict, IllegalTransition, InvalidField, NotFound
from catalog.lists import Demand
from node.services.lists import (
    LISTS,
    Clock,
    ListsApplication,
    Page,
    _after,
    _department,
    _new_id,
    _page_size,
    page_of,
)
from node.storage.lists_repository import DisputeFilter, StaleDemand
from node.storage.unit_of_work import UnitOfWork
from security.identity import Principal
from security.policy import Action, Target


def _target(dispute: Dispute) -> Target:
    return Target.dispute(dispute.id, dispute.requester_code, dispute.provider_code)


class DisputesApplication:
    def __init__(self, lists: ListsApplication) -> None:
        self.lists = lists

    @property
    def clock(self) -> Clock:
        return self.lists.clock

    def file(self, principal: Principal, demand_id: str, duty_basis: str) -> tuple[Dispute, Demand]:
        """The refused requester contests, stating its duty basis; the provider has the answer limit
        (working days) to reply."""
        now = self.clock()
        lists = self.lists
        with lists.uow(write=True) as uow:
            demand = lists.load(uow, demand_id)
            lists.policy.require(principal, Action.DISPUTE_FILE, Target.demand(demand.id, demand.requester_code,
                                                                              demand.provider_code))
            earlier = uow.lists.dispute_of(demand.id)
            if earlier is not None:
                raise IllegalTransition(demand.state.value, "contest", f"demand {demand.id} was contested already: "
                                        f"dispute {earlier.id} is {earlier.state.value}", what="demand")
            deadline = lists.deadlines.calendar.add_working_days(now, lists.deadlines.answer_days)
            dispute = domain.file_dispute(_new_id("ZY", now), demand, duty_basis, principal.subject, now, deadline)
            changed = domain.disputed(demand, now)
            uow.lists.add_dispute(dispute)
            lists.save(uow, changed, demand)
            if lists.tiers is not None and lists.tiers.forwarded_to(uow, demand.id):  # 回流: decided above
                lists.tiers.changed(uow, changed, "CONTEST", dispute.duty_basis, principal.subject, now)
            uow.commit()
        return dispute, changed

    def answer(self, principal: Principal, dispute_id: str, agree: bool, reason: str) -> tuple[Dispute, Demand]:
        """The provider agrees (the demand is granted) or maintains its refusal (to the coordinator)."""
        now = self.clock()
        with self.lists.uow(write=True) as uow:
            dispute = self._load(uow, dispute_id)
            self.lists.policy.require(principal, Action.DISPUTE_ANSWER, _target(dispute))
            self._not_forwarded(uow, dispute, "answer")
            return self._apply(uow, dispute, domain.answer(dispute, principal.subject, agree, reason, now), now)

    def decide(self, principal: Principal, dispute_id: str, grant: bool, reason: str = "", conditions: str = "",
               *, items: tuple[str, ...] = (), expires_at: dt.datetime | None = None) -> tuple[Dispute, Demand]:
        """The coordinator's decision: a grant (its conditions written on the demand and the dispute) or a
        final refusal with reasons."""
        now = self.clock()
        with self.lists.uow(write=True) as uow:
            dispute = self._load(uow, dispute_id)
            self.lists.policy.require(principal, Action.DISPUTE_DECIDE, _target(dispute))
            self._not_forwarded(uow, dispute, "decide")
            decided = domain.decide(dispute, principal.subject, grant, reason, conditions, now)
            return self._apply(uow, dispute, decided, now, items=items, expires_at=expires_at)

    def escalate_overdue(self) -> list[Dispute]:
        """Disputes the provider did not answer by its deadline go to the coordinator (the daily job)."""
        now = self.clock()
        escalated = []
        with self.lists.uow(write=True) as uow:
            for dispute in uow.lists.disputes_awaiting_provider_due(now):
                changed = domain.escalate(dispute, now)
                uow.lists.save_dispute(changed, dispute.version)
                escalated.append(changed)
            uow.commit()
        return escalated

    def get(self, principal: Principal, dispute_id: str) -> Dispute:
        with self.lists.uow() as uow:
            dispute = self._load(uow, dispute_id)
        self.lists.policy.require(principal, Action.DISPUTE_READ, _target(dispute))
        return dispute

    def list(self, principal: Principal, department_code: str = "", state: DisputeState | None = None,
             page_size: int = 0, page_token: str = "") -> Page:
        policy = self.lists.policy
        policy.require(principal, Action.LISTS_READ, LISTS)
        flt = DisputeFilter(_department(department_code), state, policy.lists_visibility(principal))
        size = _page_size(page_size)
        scope = repr(flt)
        with self.lists.uow() as uow:
            rows = uow.lists.list_disputes(flt, after_id=_after(page_token, scope), limit=size + 1)
        return page_of(rows, size, scope)

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _load(uow: UnitOfWork, dispute_id: str) -> Dispute:
        if not dispute_id:
            raise InvalidField.one("id", "is required")
        dispute = uow.lists.get_dispute(dispute_id)
        if dispute is None:
            raise NotFound("dispute", dispute_id)
        return dispute

    def _not_forwarded(self, uow: UnitOfWork, dispute: Dispute, action: str) -> None:
        """A dispute of a demand forwarded upward (回流) is answered and decided at the node that decides the
        demand; its steps come down from there."""
        upper = self.lists.tiers.forwarded_to(uow, dispute.demand_id) if self.lists.tiers is not None else ""
        if upper:
            raise IllegalTransition(dispute.state.value, action, f"demand {dispute.demand_id} was forwarded to node "
                                    f"{upper}: its provider and coordinator answer the dispute there, and their "
                                    "steps come down to this node", what="dispute")

    def _apply(self, uow: UnitOfWork, before: Dispute, after: Dispute, now: dt.datetime, **grant_options: object
               ) -> tuple[Dispute, Demand]:
        """Store the dispute's step and its demand's outcome together (a grant too, when granted)."""
        lists = self.lists
        demand = lists.load(uow, before.demand_id)
        resolved = domain.resolve_demand(demand, after, now)
        if resolved is not demand:
            options = {k: v for k, v in grant_options.items() if v}
            resolved = lists.grant_if_approved(uow, resolved, now, **options)
            after = replace(after, grant_id=resolved.grant_id)
            lists.save(uow, resolved, demand)
        try:
            uow.lists.save_dispute(after, before.version)
        except StaleDemand:
            uow.restart()
            current = uow.lists.get_dispute(before.id)
            state = current.state.value if current else "gone"
            raise Conflict(f"dispute {before.id} was changed meanwhile: it is now {state}") from None
        if lists.tiers is not None:  # a lower node's forwarded demand: the step goes down
            lists.tiers.dispute_step(uow, after, resolved, now)
        uow.commit()
        return after, resolved
