"""The lists' use cases over the real databases (SQLite and PostgreSQL), built as the bootstrap builds
them: the demand workflow per share attribute, access, two reviewers racing, 销账, compliance under a
controlled clock, expiry, grants as the policy's answer, visibility and paging."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from catalog.errors import Conflict, IllegalTransition, InvalidField, NotFound
from catalog.lists import BEIJING, Compliance, Demand, DemandRequest, DemandState
from catalog.model import OpenType, ShareType, UpdateCycle
from node.services.catalog import CatalogApplication
from node.services.lists import ListsApplication, ObligationLine
from node.storage.database import make_engine, migrate
from node.storage.lists_repository import DemandFilter, GrantFilter
from node.storage.tables import grants
from node.storage.unit_of_work import SqlUnitOfWorkFactory, UnitOfWorkFactory
from security.identity import Principal
from security.policy import Action, PermissionDenied, Policy, Target
from tests.conftest import OTHER_PROVIDER, PROVIDER, FixedClock, resource

NODE_DEPT = "11100000000013542N"  # the department running the node (the data authority)
THIRD = "11100000MB1953402E"  # a department neither asking nor providing
CONDITIONAL = "311140001/000101"
UNCONDITIONAL = "311140001/000102"
REFUSED = "311140001/000103"
REFUSAL_RULE = "涉及家庭经济状况，依《社会救助家庭经济状况核对办法》不予共享"

SYSTEM = Principal.system("t")
CONSUMER = Principal("wang@hohhot", OTHER_PROVIDER, frozenset({"consumer"}))
REVIEWER = Principal("li@mca", PROVIDER, frozenset({"reviewer"}))
SECOND_REVIEWER = Principal("zhao@mca", PROVIDER, frozenset({"reviewer"}))
PROVIDER_ADMIN = Principal("admin@mca", PROVIDER, frozenset({"catalog_admin"}))
PROVIDER_CONSUMER = Principal("zhou@mca", PROVIDER, frozenset({"consumer"}))
STRANGER_REVIEWER = Principal("sun@other", THIRD, frozenset({"reviewer"}))
STRANGER_CONSUMER = Principal("qian@other", THIRD, frozenset({"consumer"}))
STRANGER_ADMIN = Principal("admin@other", THIRD, frozenset({"catalog_admin"}))
OPERATOR = Principal("ops", THIRD, frozenset({"operator"}))
AUTHORITY = Principal("chief", NODE_DEPT, frozenset({"consumer"}))


@dataclass
class Env:
    catalog: CatalogApplication
    lists: ListsApplication
    policy: Policy
    clock: FixedClock
    uow: UnitOfWorkFactory


@pytest.fixture
def env(database_url: str, clock: FixedClock) -> Iterator[Env]:
    """The bootstrap's graph (node/bootstrap.py build) on the test database."""
    migrate(database_url)
    engine = make_engine(database_url)
    uow = SqlUnitOfWorkFactory(engine)
    policy = Policy(node_department=NODE_DEPT)
    catalog = CatalogApplication(uow, clock, policy)
    lists = ListsApplication(uow, clock, policy)
    policy.grants = lists
    yield Env(catalog, lists, policy, clock, uow)
    engine.dispose()


def publish(env: Env, code: str, **changes: object) -> None:
    env.catalog.create(SYSTEM, resource(code, **changes))
    env.catalog.publish(SYSTEM, code)


@pytest.fixture
def shared(env: Env) -> Env:
    """A resource of each share attribute, all of PROVIDER."""
    publish(env, CONDITIONAL)
    publish(env, UNCONDITIONAL, name="城乡低保标准信息", share_type=ShareType.UNCONDITIONAL, share_condition="")
    publish(env, REFUSED, name="社会救助家庭经济状况核对结果信息", share_type=ShareType.NOT_SHARED,
            open_type=OpenType.NOT_OPEN, share_condition=REFUSAL_RULE)
    return env


def ask(code: str = CONDITIONAL, **changes: object) -> DemandRequest:
    fields: dict[str, object] = dict(
        requester_code="", resource_code=code, items=("姓名", "公民身份号码"), purpose="医疗救助对象身份核验",
        legal_basis="《社会救助暂行办法》第二十九条", frequency=UpdateCycle.MONTHLY, contact="王五 0471-6612345")
    fields.update(changes)
    return DemandRequest(**fields)  # type: ignore[arg-type]


def grant_rows(env: Env, demand_id: str = "") -> int:
    query = select(func.count()).select_from(grants)
    if demand_id:
        query = query.where(grants.c.demand_id == demand_id)
    with env.uow() as uow:
        return uow.connection.execute(query).scalar_one()


def line(env: Env, code: str, department: str = PROVIDER) -> ObligationLine:
    (found,) = [x for x in env.lists.obligations(OPERATOR, department) if x.obligation.resource_code == code]
    return found


# -- the workflow per share attribute -------------------------------------------------------------------

def test_unconditional_demand_is_approved_with_a_grant_and_closed_by_the_first_delivery(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask(UNCONDITIONAL))
    assert demand.state is DemandState.APPROVED and demand.requester_code == OTHER_PROVIDER
    assert demand.grant_id and demand.provider_code == PROVIDER and demand.decided_by == "rule:无条件共享"
    (grant,) = env.lists.list_grants(CONSUMER, GrantFilter()).rows
    assert grant.id == demand.grant_id and grant.consumer_code == OTHER_PROVIDER
    assert grant.items == ("姓名", "公民身份号码") and dict(grant.masking) == {"公民身份号码": "keep:6,4"}
    assert grant.expires_at == env.clock.now + dt.timedelta(days=365)
    assert env.lists.get_demand(CONSUMER, demand.id) == demand

    assert env.lists.record_delivery(PROVIDER, UNCONDITIONAL, "", "b-0", 10) == []  # received, not delivered
    assert env.lists.record_delivery(PROVIDER, UNCONDITIONAL, THIRD, "b-1", 10) == []  # someone else's
    env.clock.advance(days=1)
    (closed,) = env.lists.record_delivery(PROVIDER, UNCONDITIONAL, OTHER_PROVIDER, "b-2", 10)
    assert closed.id == demand.id and closed.state is DemandState.FULFILLED
    stored = env.lists.get_demand(REVIEWER, demand.id)
    assert stored.state is DemandState.FULFILLED and stored.updated_at == env.clock.now
    assert stored.grant_id == demand.grant_id
    assert env.lists.record_delivery(PROVIDER, UNCONDITIONAL, OTHER_PROVIDER, "b-3", 10) == []  # closed once


def test_conditional_demand_is_reviewed_then_approved_with_the_reviewers_terms(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask(items=("姓名", "公民身份号码", "保障金额")))
    assert demand.state is DemandState.UNDER_REVIEW and not demand.grant_id
    assert grant_rows(env) == 0
    until = env.clock.now + dt.timedelta(days=90)
    approved = env.lists.decide(REVIEWER, demand.id, True, "同意，限医疗救助使用", expires_at=until,
                                items=["姓名", "公民身份号码"], masking={"公民身份号码": "hash"})
    assert approved.state is DemandState.APPROVED and approved.decided_by == REVIEWER.subject
    assert approved.reason == "同意，限医疗救助使用" and approved.version == demand.version + 1
    (grant,) = env.lists.list_grants(REVIEWER, GrantFilter(resource_code=CONDITIONAL)).rows
    assert grant.id == approved.grant_id and grant.demand_id == demand.id
    assert grant.items == ("姓名", "公民身份号码") and dict(grant.masking) == {"公民身份号码": "hash"}
    assert grant.expires_at == until and grant.provider_code == PROVIDER
    with pytest.raises(IllegalTransition, match="APPROVED"):
        env.lists.decide(SECOND_REVIEWER, demand.id, False, "再议")
    (closed,) = env.lists.record_delivery(PROVIDER, CONDITIONAL, OTHER_PROVIDER, "b-1", 5)
    assert closed.state is DemandState.FULFILLED


def test_conditional_demand_rejected_needs_a_reason_and_creates_no_grant(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask())
    with pytest.raises(InvalidField) as caught:
        env.lists.decide(REVIEWER, demand.id, False, "  ")
    assert [p.field for p in caught.value.problems] == ["reason"]
    assert env.lists.get_demand(REVIEWER, demand.id) == demand
    rejected = env.lists.decide(REVIEWER, demand.id, False, "用途与共享条件不符")
    assert rejected.state is DemandState.REJECTED and rejected.reason == "用途与共享条件不符"
    assert grant_rows(env) == 0
    with pytest.raises(IllegalTransition, match="REJECTED"):
        env.lists.decide(REVIEWER, demand.id, True)


def test_not_shared_demand_is_rejected_at_once_citing_the_rule(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask(REFUSED, items=()))
    assert demand.state is DemandState.REJECTED and REFUSAL_RULE in demand.reason
    assert demand.decided_by == "rule:不予共享" and not demand.grant_id
    assert grant_rows(env) == 0
    decision = env.lists.grant_decision(OTHER_PROVIDER, REFUSED)
    assert not decision.allowed and "holds no grant" in decision.reason


def test_description_only_demand_is_linked_by_its_requester(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask("", items=(), description="低保对象身份信息，用于医疗救助"))
    assert demand.state is DemandState.SUBMITTED and demand.provider_code == ""
    with pytest.raises(PermissionDenied):
        env.lists.link_demand(STRANGER_CONSUMER, demand.id, UNCONDITIONAL)
    linked = env.lists.link_demand(CONSUMER, demand.id, UNCONDITIONAL)
    assert linked.state is DemandState.APPROVED and linked.grant_id
    assert grant_rows(env, demand.id) == 1


def test_unknown_and_retired_resources_are_refused_and_nothing_stored(shared: Env):
    env = shared
    with pytest.raises(NotFound, match="311140001/999999"):
        env.lists.file_demand(CONSUMER, ask("311140001/999999"))
    env.catalog.retire(SYSTEM, CONDITIONAL)
    with pytest.raises(InvalidField, match="RETIRED") as caught:
        env.lists.file_demand(CONSUMER, ask())
    assert [p.field for p in caught.value.problems] == ["resource_code"]
    with pytest.raises(InvalidField) as caught:
        env.lists.file_demand(CONSUMER, ask(UNCONDITIONAL, items=("姓名", "身份证号")))
    assert [p.field for p in caught.value.problems] == ["items[1]"]
    assert env.lists.list_demands(OPERATOR, DemandFilter()).rows == [] and grant_rows(env) == 0


# -- access ---------------------------------------------------------------------------------------------

def test_a_reviewer_of_another_department_cannot_decide(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask())
    for who in (STRANGER_REVIEWER, Principal("r", OTHER_PROVIDER, frozenset({"reviewer"})), PROVIDER_ADMIN):
        with pytest.raises(PermissionDenied) as caught:
            env.lists.decide(who, demand.id, True)
        assert caught.value.action is Action.DEMAND_DECIDE
    assert "providing department" in str(caught.value) or "reviewer role" in str(caught.value)
    assert env.lists.get_demand(CONSUMER, demand.id) == demand and grant_rows(env) == 0


def test_only_the_requesting_departments_consumer_withdraws(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask())
    for who in (STRANGER_CONSUMER, PROVIDER_CONSUMER, REVIEWER):
        with pytest.raises(PermissionDenied, match=OTHER_PROVIDER):
            env.lists.withdraw(who, demand.id, "不需要了")
    assert env.lists.get_demand(CONSUMER, demand.id).state is DemandState.UNDER_REVIEW
    colleague = Principal("wu@hohhot", OTHER_PROVIDER, frozenset({"consumer"}))
    withdrawn = env.lists.withdraw(colleague, demand.id, "需求已变更")
    assert withdrawn.state is DemandState.WITHDRAWN and withdrawn.reason == "需求已变更"
    with pytest.raises(IllegalTransition, match="WITHDRAWN"):
        env.lists.decide(REVIEWER, demand.id, True)


def test_filing_needs_the_consumer_role_and_a_third_department_cannot_read(shared: Env):
    env = shared
    with pytest.raises(PermissionDenied, match="consumer role"):
        env.lists.file_demand(REVIEWER, ask())
    demand = env.lists.file_demand(CONSUMER, ask())
    with pytest.raises(PermissionDenied, match=demand.id):
        env.lists.get_demand(STRANGER_CONSUMER, demand.id)
    assert env.lists.get_demand(OPERATOR, demand.id).id == demand.id
    assert env.lists.get_demand(AUTHORITY, demand.id).id == demand.id
    with pytest.raises(NotFound):
        env.lists.get_demand(CONSUMER, "XQ-20260302-FFFFFFFF")


# -- two reviewers at once ------------------------------------------------------------------------------

@pytest.mark.parametrize("second_approves", [True, False], ids=["both-approve", "approve-and-reject"])
def test_two_reviewers_deciding_at_once_exactly_one_wins(shared: Env, second_approves: bool):
    env = shared
    for _ in range(5):
        demand = env.lists.file_demand(CONSUMER, ask())
        barrier = threading.Barrier(2)
        outcomes: dict[str, Demand | Exception] = {}

        def decide(who: Principal, approve: bool, demand_id: str = demand.id, gate: threading.Barrier = barrier,
                   results: dict = outcomes) -> None:
            gate.wait(timeout=30)
            try:
                results[who.subject] = env.lists.decide(who, demand_id, approve, "" if approve else "材料不全")
            except (Conflict, IllegalTransition) as error:
                results[who.subject] = error

        threads = [threading.Thread(target=decide, args=(REVIEWER, True)),
                   threading.Thread(target=decide, args=(SECOND_REVIEWER, second_approves))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        won = [v for v in outcomes.values() if isinstance(v, Demand)]
        lost = [v for v in outcomes.values() if isinstance(v, Exception)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        winner = won[0]
        assert winner.state.value in str(lost[0]), (winner, lost[0])
        stored = env.lists.get_demand(REVIEWER, demand.id)
        assert stored.state is winner.state and stored.decided_by == winner.decided_by
        assert stored.version == demand.version + 1
        expected_grants = 1 if winner.state is DemandState.APPROVED else 0
        assert grant_rows(env, demand.id) == expected_grants
        if expected_grants:
            assert stored.grant_id and env.lists.grant_decision(OTHER_PROVIDER, CONDITIONAL).allowed


# -- the responsibility list ----------------------------------------------------------------------------

def test_compliance_follows_the_deliveries_under_the_clock(env: Env):
    env.clock.now = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 09:00 in Beijing
    publish(env, CONDITIONAL)  # monthly: March is due 5 days after its end, 04-06 00:00 in Beijing
    first = line(env, CONDITIONAL)
    assert first.status.compliance is Compliance.NOT_YET_DUE
    assert first.status.next_due == dt.datetime(2026, 4, 6, tzinfo=BEIJING)
    assert first.obligation.department_code == PROVIDER and not first.obligation.explicit

    env.clock.now = dt.datetime(2026, 4, 6, 1, 0, tzinfo=dt.UTC)
    never = line(env, CONDITIONAL).status
    assert never.compliance is Compliance.NEVER_DELIVERED and never.overdue_by == dt.timedelta(hours=9)
    env.lists.record_delivery(PROVIDER, CONDITIONAL, OTHER_PROVIDER, "out-1", 3)  # to a consumer: not a report
    assert line(env, CONDITIONAL).status.compliance is Compliance.NEVER_DELIVERED

    env.lists.record_delivery(PROVIDER, CONDITIONAL, "", "in-1", 120)
    caught_up = line(env, CONDITIONAL).status
    assert caught_up.compliance is Compliance.ON_TIME and caught_up.last_delivery == env.clock.now
    assert caught_up.overdue_by == dt.timedelta(0) and caught_up.deliveries == 1
    assert caught_up.missed_periods == 1  # March arrived late and stays counted

    env.clock.advance(days=61)  # 06-06 09:00 in Beijing: May (due 06-06 00:00) has nothing
    late = line(env, CONDITIONAL).status
    assert late.compliance is Compliance.OVERDUE and late.overdue_by > dt.timedelta(0)
    assert late.overdue_by == dt.timedelta(hours=9) and late.missed_periods == 2
    assert [x.obligation.resource_code for x in env.lists.obligations(CONSUMER, PROVIDER, Compliance.OVERDUE)] \
        == [CONDITIONAL]
    assert env.lists.obligations(CONSUMER, PROVIDER, Compliance.ON_TIME) == []


def test_an_explicit_line_overrides_the_grace_days(env: Env):
    env.clock.now = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
    publish(env, CONDITIONAL)
    publish(env, UNCONDITIONAL, share_type=ShareType.UNCONDITIONAL, share_condition="")
    with pytest.raises(PermissionDenied, match=PROVIDER):
        env.lists.add_obligation(STRANGER_ADMIN, PROVIDER, CONDITIONAL, None, 0, "")
    with pytest.raises(InvalidField, match="grace_days"):
        env.lists.add_obligation(PROVIDER_ADMIN, PROVIDER, CONDITIONAL, None, 400, "")
    with pytest.raises(NotFound):
        env.lists.add_obligation(PROVIDER_ADMIN, PROVIDER, "311140001/999999", None, 0, "")
    added = env.lists.add_obligation(PROVIDER_ADMIN, PROVIDER, CONDITIONAL, None, 0, "张三 010-58123114")
    assert added.explicit and added.grace_days == 0 and added.update_cycle is UpdateCycle.MONTHLY

    env.clock.now = dt.datetime(2026, 4, 2, 1, 0, tzinfo=dt.UTC)  # March ended yesterday in Beijing
    strict = line(env, CONDITIONAL)
    assert strict.obligation.explicit and strict.obligation.contact == "张三 010-58123114"
    assert strict.obligation.effective_grace_days == 0 and "0 日内" in strict.obligation.due_rule
    assert strict.obligation.items  # the catalog's metadata is kept on the explicit line
    assert strict.status.compliance is Compliance.NEVER_DELIVERED
    assert strict.status.overdue_by == dt.timedelta(days=1, hours=9)  # due 04-01 00:00 in Beijing
    default = line(env, UNCONDITIONAL)
    assert not default.obligation.explicit and default.status.compliance is Compliance.NOT_YET_DUE
    # an administrator changes it again: one line, the new rule
    env.lists.add_obligation(PROVIDER_ADMIN, PROVIDER, CONDITIONAL, UpdateCycle.QUARTERLY, None, "")
    again = [x for x in env.lists.obligations(OPERATOR, PROVIDER) if x.obligation.resource_code == CONDITIONAL]
    assert len(again) == 1 and again[0].obligation.update_cycle is UpdateCycle.QUARTERLY
    assert again[0].status.compliance is Compliance.NOT_YET_DUE


def test_unlinked_demands_expire_and_overdue_reviews_escalate(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask())
    description_only = env.lists.file_demand(CONSUMER, ask("", items=(), description="低保对象名单"))
    approved = env.lists.file_demand(CONSUMER, ask(UNCONDITIONAL))
    submitted_days = env.lists.deadlines.submitted_days
    assert description_only.review_deadline == env.clock.now + dt.timedelta(days=submitted_days)
    assert demand.review_deadline == demand.answer_deadline  # working days (tests/unit/test_workdays.py)
    assert env.lists.expire_overdue() == [] and env.lists.escalate_overdue() == []
    assert description_only.review_deadline < demand.review_deadline  # 10 calendar days < 10 working days
    env.clock.now = description_only.review_deadline
    expired = env.lists.expire_overdue()
    assert [d.id for d in expired] == [description_only.id] and expired[0].state is DemandState.EXPIRED
    env.clock.now = demand.review_deadline - dt.timedelta(seconds=1)
    assert env.lists.escalate_overdue() == []
    env.clock.now = demand.review_deadline
    assert [d.id for d in env.lists.escalate_overdue()] == [demand.id]
    assert env.lists.escalate_overdue() == []  # once per stage
    late = env.lists.get_demand(CONSUMER, demand.id)
    assert late.state is DemandState.UNDER_REVIEW and late.escalated_at is not None
    assert env.lists.get_demand(CONSUMER, approved.id).state is DemandState.APPROVED
    answered = env.lists.decide(REVIEWER, demand.id, True)  # late, recorded as late, not refused
    assert answered.state is DemandState.APPROVED and answered.answer_late
    assert env.lists.expire_overdue() == []


# -- grants as the policy's answer ----------------------------------------------------------------------

def test_a_live_grant_allows_an_expired_one_is_named(shared: Env):
    env = shared
    target = Target("resource", UNCONDITIONAL)
    with pytest.raises(PermissionDenied, match="holds no grant"):
        env.policy.require(CONSUMER, Action.EXCHANGE_SUBSCRIBE, target)
    demand = env.lists.file_demand(CONSUMER, ask(UNCONDITIONAL))
    decision = env.lists.grant_decision(OTHER_PROVIDER, UNCONDITIONAL)
    assert decision.allowed and demand.grant_id in decision.reason
    assert env.policy.require(CONSUMER, Action.EXCHANGE_SUBSCRIBE, target).allowed
    assert env.policy.decide(CONSUMER, Action.EXCHANGE_PULL, target).allowed
    assert env.lists.live_grant(CONSUMER, UNCONDITIONAL, Action.EXCHANGE_PULL).id == demand.grant_id
    assert not env.policy.decide(STRANGER_CONSUMER, Action.EXCHANGE_PULL, target).allowed

    (grant,) = env.lists.list_grants(CONSUMER, GrantFilter()).rows
    env.clock.now = grant.expires_at
    decision = env.lists.grant_decision(OTHER_PROVIDER, UNCONDITIONAL)
    assert not decision.allowed and "expired" in decision.reason and grant.id in decision.reason
    with pytest.raises(PermissionDenied, match="expired") as caught:
        env.policy.require(CONSUMER, Action.EXCHANGE_SUBSCRIBE, target)
    assert caught.value.reason == decision.reason
    with pytest.raises(PermissionDenied, match="expired"):
        env.lists.live_grant(CONSUMER, UNCONDITIONAL, Action.EXCHANGE_SUBSCRIBE)


def test_a_revoked_grant_is_named_and_revoked_once(shared: Env):
    env = shared
    demand = env.lists.file_demand(CONSUMER, ask(UNCONDITIONAL))
    for who in (CONSUMER, STRANGER_REVIEWER, PROVIDER_ADMIN):
        with pytest.raises(PermissionDenied):
            env.lists.revoke_grant(who, demand.grant_id, "用途超出授权范围")
    with pytest.raises(InvalidField, match="reason"):
        env.lists.revoke_grant(REVIEWER, demand.grant_id, "")
    with pytest.raises(NotFound):
        env.lists.revoke_grant(REVIEWER, "SQ-20260302-FFFFFFFF", "x")
    assert env.lists.grant_decision(OTHER_PROVIDER, UNCONDITIONAL).allowed
    revoked = env.lists.revoke_grant(REVIEWER, demand.grant_id, "用途超出授权范围")
    assert revoked.revoked_at == env.clock.now and revoked.state(env.clock.now) == "REVOKED"
    decision = env.lists.grant_decision(OTHER_PROVIDER, UNCONDITIONAL)
    assert not decision.allowed and "revoked" in decision.reason and "用途超出授权范围" in decision.reason
    with pytest.raises(PermissionDenied, match="revoked") as caught:
        env.policy.require(CONSUMER, Action.EXCHANGE_SUBSCRIBE, Target("resource", UNCONDITIONAL))
    assert caught.value.reason == decision.reason
    with pytest.raises(IllegalTransition, match="REVOKED"):
        env.lists.revoke_grant(SECOND_REVIEWER, demand.grant_id, "again")
    (stored,) = env.lists.list_grants(REVIEWER, GrantFilter()).rows
    assert stored.revoked_reason == "用途超出授权范围" and stored.revoked_at == revoked.revoked_at


# -- visibility and paging ------------------------------------------------------------------------------

def test_a_third_department_sees_none_of_two_departments_demands(shared: Env):
    env = shared
    filed = [env.lists.file_demand(CONSUMER, ask()).id, env.lists.file_demand(CONSUMER, ask(UNCONDITIONAL)).id,
             env.lists.file_demand(CONSUMER, ask(REFUSED, items=())).id]
    assert env.lists.list_demands(STRANGER_CONSUMER, DemandFilter()).rows == []
    assert env.lists.list_demands(STRANGER_REVIEWER, DemandFilter(department_code=PROVIDER)).rows == []
    assert env.lists.list_grants(STRANGER_CONSUMER, GrantFilter()).rows == []
    for who in (CONSUMER, REVIEWER, OPERATOR, AUTHORITY):
        assert sorted(d.id for d in env.lists.list_demands(who, DemandFilter()).rows) == sorted(filed), who
    assert len(env.lists.list_grants(REVIEWER, GrantFilter()).rows) == 1
    under_review = env.lists.list_demands(REVIEWER, DemandFilter(state=DemandState.UNDER_REVIEW)).rows
    assert [d.id for d in under_review] == [filed[0]]
    assert env.lists.list_demands(REVIEWER, DemandFilter(requester_code=PROVIDER)).rows == []


def test_pages_follow_their_tokens(shared: Env):
    env = shared
    filed = sorted(env.lists.file_demand(CONSUMER, ask()).id for _ in range(5))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = env.lists.list_demands(CONSUMER, DemandFilter(), page_size=2, page_token=token)
        seen.extend(d.id for d in page.rows)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == filed and pages == 3
    first = env.lists.list_demands(CONSUMER, DemandFilter(), page_size=2)
    with pytest.raises(InvalidField, match="page_token"):
        env.lists.list_demands(CONSUMER, DemandFilter(state=DemandState.APPROVED), page_size=2,
                               page_token=first.next_page_token)
    with pytest.raises(InvalidField, match="page_token"):
        env.lists.list_demands(REVIEWER, DemandFilter(), page_size=2, page_token=first.next_page_token)
    with pytest.raises(InvalidField, match="page_token"):
        env.lists.list_demands(CONSUMER, DemandFilter(), page_token="not-a-token")
    with pytest.raises(InvalidField, match="page_size"):
        env.lists.list_demands(CONSUMER, DemandFilter(), page_size=501)
    assert env.lists.list_demands(CONSUMER, DemandFilter(), page_size=5).next_page_token == ""
