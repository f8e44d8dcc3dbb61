"""争议协调: a refused department contests a refusal, the provider answers, the coordinator decides.

The regulation's path when a provider refuses a 有条件共享 demand: the requesting department, which needs
the data for its duties, states its duty basis (履职依据); the provider answers — it agrees (the demand
is granted) or maintains its refusal with reasons; failing agreement, the competent department
(政务数据主管部门, role ``coordinator``) decides: grant, possibly with conditions, or a final refusal with
reasons. Only a refusal by the provider can be contested (not 不予共享, which is the rule, nor a failed
compliance review, which is the coordinator's own decision), and only once. Pure code, clock passed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

from catalog.errors import IllegalTransition, InvalidField
from catalog.lists import Demand, DemandState, text_problem


class DisputeState(StrEnum):
    AWAITING_PROVIDER = "AWAITING_PROVIDER"
    AWAITING_COORDINATOR = "AWAITING_COORDINATOR"
    SETTLED = "SETTLED"
    """The provider agreed: the demand is granted."""
    GRANTED = "GRANTED"
    """The coordinator decided to grant (with its conditions)."""
    REFUSED = "REFUSED"
    """The coordinator's final refusal, with reasons."""


OPEN = frozenset({DisputeState.AWAITING_PROVIDER, DisputeState.AWAITING_COORDINATOR})


@dataclass(frozen=True)
class Dispute:
    id: str
    demand_id: str
    requester_code: str
    provider_code: str
    resource_code: str
    duty_basis: str
    state: DisputeState
    created_at: dt.datetime
    updated_at: dt.datetime
    provider_deadline: dt.datetime
    filed_by: str = ""
    provider_answer: str = ""
    provider_by: str = ""
    provider_at: dt.datetime | None = None
    decision_reason: str = ""
    conditions: str = ""
    decided_by: str = ""
    decided_at: dt.datetime | None = None
    escalated_at: dt.datetime | None = None
    """The provider did not answer by its deadline: the dispute went to the coordinator."""
    grant_id: str = ""
    version: int = 1

    @property
    def provider_late(self) -> bool:
        return self.provider_at is not None and self.provider_at >= self.provider_deadline


def contestable(demand: Demand) -> str | None:
    """Why the demand's refusal cannot be contested, or None when it can."""
    if demand.state is not DemandState.REJECTED:
        return f"demand {demand.id} is {demand.state.value}: only a refused demand is contested"
    if demand.answered_at is None:
        if demand.decided_by.startswith("rule:"):
            return f"demand {demand.id} was refused by the rule ({demand.reason}): 不予共享 is not negotiable"
        return f"demand {demand.id} failed the compliance review: that is the coordinator's own decision"
    return None


def _text(name: str, value: str, *, required: str = "") -> str:
    if required and not value.strip():
        raise InvalidField.one(name, required)
    problem = text_problem(name, value)
    if problem:
        raise InvalidField(problem)
    return value.strip()


def file_dispute(dispute_id: str, demand: Demand, duty_basis: str, filed_by: str, now: dt.datetime,
                 provider_deadline: dt.datetime) -> Dispute:
    basis = _text("duty_basis", duty_basis, required="a dispute states the duty basis (履职依据) for the data")
    problem = contestable(demand)
    if problem:
        raise IllegalTransition(demand.state.value, "contest", problem, what="demand")
    return Dispute(dispute_id, demand.id, demand.requester_code, demand.provider_code, demand.resource_code, basis,
                   DisputeState.AWAITING_PROVIDER, now, now, provider_deadline, filed_by)


def disputed(demand: Demand, now: dt.datetime) -> Demand:
    """The demand while its dispute is open (争议协调中)."""
    return replace(demand, state=DemandState.DISPUTED, updated_at=now, version=demand.version + 1)


def _require(dispute: Dispute, state: DisputeState, action: str) -> None:
    if dispute.state is not state:
        raise IllegalTransition(dispute.state.value, action, f"dispute {dispute.id} is {dispute.state.value}; "
                                f"{action} needs {state.value}", what="dispute")


def answer(dispute: Dispute, reviewer: str, agree: bool, reason: str, now: dt.datetime) -> Dispute:
    """The provider's answer: agree (settled, the demand is granted) or maintain the refusal with reasons
    (the dispute goes to the coordinator). After the deadline it is recorded as late, not refused."""
    _require(dispute, DisputeState.AWAITING_PROVIDER, "answer")
    text = _text("reason", reason, required="" if agree else "maintaining a refusal gives its reasons (须说明理由)")
    state = DisputeState.SETTLED if agree else DisputeState.AWAITING_COORDINATOR
    return replace(dispute, state=state, provider_answer=text or "同意共享", provider_by=reviewer, provider_at=now,
                   updated_at=now, version=dispute.version + 1)


def escalate(dispute: Dispute, now: dt.datetime) -> Dispute:
    """The provider let its deadline pass: the coordinator takes the dispute."""
    _require(dispute, DisputeState.AWAITING_PROVIDER, "escalate")
    if now < dispute.provider_deadline:
        raise IllegalTransition(dispute.state.value, "escalate", f"the provider has until {dispute.provider_deadline}",
                                what="dispute")
    return replace(dispute, state=DisputeState.AWAITING_COORDINATOR, escalated_at=now, updated_at=now,
                   version=dispute.version + 1)


def decide(dispute: Dispute, coordinator: str, grant: bool, reason: str, conditions: str, now: dt.datetime
           ) -> Dispute:
    """The coordinator's decision: grant (with conditions) or a final refusal with reasons."""
    _require(dispute, DisputeState.AWAITING_COORDINATOR, "decide")
    text = _text("reason", reason, required="" if grant else "a final refusal gives its reasons (须说明理由)")
    terms = _text("conditions", conditions)
    if terms and not grant:
        raise InvalidField.one("conditions", "conditions go with a grant, not with a refusal")
    return replace(dispute, state=DisputeState.GRANTED if grant else DisputeState.REFUSED, decision_reason=text,
                   conditions=terms, decided_by=coordinator, decided_at=now, updated_at=now,
                   version=dispute.version + 1)


def resolve_demand(demand: Demand, dispute: Dispute, now: dt.datetime) -> Demand:
    """The demand after its dispute: granted (SETTLED or GRANTED) or refused for good (REFUSED)."""
    if dispute.state is DisputeState.SETTLED:
        reason = f"争议协商：提供部门同意共享（{dispute.provider_answer}）"
        return replace(demand, state=DemandState.APPROVED, reason=reason, decided_by=dispute.provider_by,
                       updated_at=now, version=demand.version + 1)
    if dispute.state is DisputeState.GRANTED:
        reason = "争议协调：主管部门决定共享" + (f"，条件：{dispute.conditions}" if dispute.conditions else "") \
            + (f"（{dispute.decision_reason}）" if dispute.decision_reason else "")
        return replace(demand, state=DemandState.APPROVED, reason=reason, decided_by=dispute.decided_by,
                       updated_at=now, version=demand.version + 1)
    if dispute.state is DisputeState.REFUSED:
        return replace(demand, state=DemandState.REJECTED, reason=f"争议协调：主管部门最终不予共享（{dispute.decision_reason}）",
                       decided_by=dispute.decided_by, updated_at=now, version=demand.version + 1)
    return demand
