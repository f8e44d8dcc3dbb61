"""The policy table (DESIGN.md §8): who may do what to which target, and the reason given either way."""

from __future__ import annotations

import pytest

from security.identity import ROLES, Principal
from security.policy import (
    AUDIT_TRAIL,
    CATALOG_WRITES,
    NODE_KEYS,
    Action,
    Decision,
    PermissionDenied,
    Policy,
    Target,
)
from tests.conftest import OTHER_PROVIDER, PROVIDER

CODE = "311140001/000101"
PUBLISHED = Target.resource(CODE, PROVIDER)
DRAFT = Target.resource(CODE, PROVIDER, published=False)
WRITES = sorted(CATALOG_WRITES)


def who(dept: str, *roles: str, subject: str = "tester") -> Principal:
    return Principal(subject=subject, department_code=dept, roles=frozenset(roles))


ADMIN = who(PROVIDER, "catalog_admin")
OTHER_ADMIN = who(OTHER_PROVIDER, "catalog_admin")
PROVIDER_ONLY = who(PROVIDER, "provider")
OWN_CONSUMER = who(PROVIDER, "consumer")
OTHER_CONSUMER = who(OTHER_PROVIDER, "consumer")
OFFICER = who(PROVIDER, "security_officer")
OTHER_OFFICER = who(OTHER_PROVIDER, "security_officer")
SYSTEM = Principal.system("node-1")
EVERYONE = [ADMIN, OTHER_ADMIN, PROVIDER_ONLY, OWN_CONSUMER, OTHER_CONSUMER, OFFICER, SYSTEM,
            who(OTHER_PROVIDER, "reviewer"), who(OTHER_PROVIDER, "platform"), who(OTHER_PROVIDER, "operator")]


class AlwaysGranted:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        self.asked.append((department_code, resource_code))
        return Decision(True, f"grant G-1 of {department_code} for {resource_code}")


class GrantLookupStub:
    """A GrantLookup that answers from a fixed set of (department, resource)."""

    def __init__(self, granted: set[tuple[str, str]]) -> None:
        self.granted = granted

    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        if (department_code, resource_code) in self.granted:
            return Decision(True, f"grant of {department_code} for {resource_code}")
        return Decision(False, f"{department_code} holds no grant for {resource_code}")


def ids(principal: Principal) -> str:
    return f"{'+'.join(sorted(principal.roles))}@{principal.department_code[-4:] or 'node'}"


@pytest.fixture
def policy() -> Policy:
    return Policy()


def allowed(policy: Policy, principal: Principal, action: Action, target: Target) -> Decision:
    decision = policy.decide(principal, action, target)
    assert decision.reason.strip(), "every decision carries a reason"
    assert bool(decision) is decision.allowed
    return decision


# -- reading the catalog ----------------------------------------------------------------------------------

@pytest.mark.parametrize("principal", [p for p in EVERYONE if p is not OFFICER], ids=ids)
def test_anyone_authenticated_reads_a_published_resource(policy, principal):
    assert allowed(policy, principal, Action.CATALOG_READ, PUBLISHED)
    assert allowed(policy, principal, Action.CATALOG_READ, Target("catalog"))


@pytest.mark.parametrize(("principal", "expected"), [
    (ADMIN, True), (PROVIDER_ONLY, True), (OWN_CONSUMER, True), (SYSTEM, True),
    (OTHER_ADMIN, False), (OTHER_CONSUMER, False), (who(OTHER_PROVIDER, "operator"), False),
    (who(OTHER_PROVIDER, "reviewer", "consumer", "provider"), False), (OFFICER, False),
], ids=lambda value: ids(value) if isinstance(value, Principal) else str(value))
def test_a_draft_is_readable_by_its_own_department_only(policy, principal, expected):
    decision = allowed(policy, principal, Action.CATALOG_READ, DRAFT)
    assert decision.allowed is expected
    if not expected and principal is not OFFICER:
        assert "draft" in decision.reason and PROVIDER in decision.reason and CODE in decision.reason


def test_a_draft_without_owner_is_readable_by_nobody_but_the_node(policy):
    ownerless = Target.resource(CODE, "", published=False)
    assert not allowed(policy, Principal(subject="x", department_code="", roles=frozenset({"consumer"})),
                       Action.CATALOG_READ, ownerless)
    assert allowed(policy, SYSTEM, Action.CATALOG_READ, ownerless)


# -- writing the catalog ----------------------------------------------------------------------------------

@pytest.mark.parametrize("action", WRITES)
def test_catalog_admin_of_the_provider_may_write(policy, action):
    decision = allowed(policy, ADMIN, action, PUBLISHED)
    assert decision.allowed and "catalog_admin" in decision.reason
    assert allowed(policy, ADMIN, action, DRAFT)
    assert allowed(policy, who(PROVIDER, "catalog_admin", "provider", "consumer"), action, PUBLISHED)


@pytest.mark.parametrize("action", WRITES)
def test_catalog_admin_of_another_department_is_denied_naming_both(policy, action):
    decision = allowed(policy, OTHER_ADMIN, action, PUBLISHED)
    assert not decision
    assert PROVIDER in decision.reason and OTHER_PROVIDER in decision.reason and CODE in decision.reason


@pytest.mark.parametrize("action", WRITES)
@pytest.mark.parametrize("principal", [PROVIDER_ONLY, OWN_CONSUMER, who(PROVIDER, "reviewer", "provider"),
                                       who(PROVIDER, "operator"), who(PROVIDER, "platform")], ids=ids)
def test_writes_need_the_catalog_admin_role(policy, principal, action):
    decision = allowed(policy, principal, action, PUBLISHED)
    assert not decision
    assert "catalog_admin" in decision.reason and action.value in decision.reason
    for role in principal.roles:
        assert role in decision.reason  # the caller's roles are named


@pytest.mark.parametrize("action", WRITES)
def test_the_node_itself_may_write_anything(policy, action):
    assert allowed(policy, SYSTEM, action, PUBLISHED)
    assert allowed(policy, SYSTEM, action, Target.resource("311140001/000102", OTHER_PROVIDER))


# -- the security officer ---------------------------------------------------------------------------------

@pytest.mark.parametrize("officer", [OFFICER, OTHER_OFFICER], ids=ids)
def test_security_officer_reads_the_audit_trail(policy, officer):
    assert allowed(policy, officer, Action.AUDIT_READ, AUDIT_TRAIL)


@pytest.mark.parametrize(("action", "target"), [
    (Action.CATALOG_READ, PUBLISHED), (Action.CATALOG_READ, DRAFT), (Action.CATALOG_READ, Target("catalog")),
    *((action, PUBLISHED) for action in WRITES),
    (Action.EXCHANGE_SUBSCRIBE, PUBLISHED), (Action.EXCHANGE_PULL, PUBLISHED),
    (Action.LISTS_READ, Target("lists")),
    (Action.DEMAND_FILE, Target.demand("D-1", PROVIDER, OTHER_PROVIDER)),
    (Action.GRANT_READ, Target.grant("G-1", PROVIDER, OTHER_PROVIDER)),
], ids=lambda value: str(value))
def test_security_officer_does_nothing_else(action, target):
    policy = Policy(AlwaysGranted(), node_department=PROVIDER)
    decision = allowed(policy, OFFICER, action, target)
    assert not decision
    assert "nothing else" in decision.reason


@pytest.mark.parametrize("principal", [ADMIN, OWN_CONSUMER, OTHER_CONSUMER, who(PROVIDER, "operator")],
                         ids=ids)
def test_only_a_security_officer_reads_the_audit_trail(policy, principal):
    decision = allowed(policy, principal, Action.AUDIT_READ, AUDIT_TRAIL)
    assert not decision and "security_officer" in decision.reason


@pytest.mark.parametrize("principal", [*EVERYONE, who(PROVIDER, *sorted(ROLES))], ids=ids)
def test_nobody_writes_the_audit_trail(policy, principal):
    decision = allowed(policy, principal, Action.AUDIT_WRITE, AUDIT_TRAIL)
    assert not decision and "append-only" in decision.reason


# -- keys and exchange ------------------------------------------------------------------------------------

@pytest.mark.parametrize("principal", EVERYONE, ids=ids)
def test_the_node_keys_are_readable_by_everyone(policy, principal):
    assert allowed(policy, principal, Action.KEYS_READ, NODE_KEYS)


@pytest.mark.parametrize("action", [Action.EXCHANGE_SUBSCRIBE, Action.EXCHANGE_PULL])
@pytest.mark.parametrize("principal", [OTHER_CONSUMER, OTHER_ADMIN, ADMIN], ids=ids)
def test_exchange_is_denied_without_a_grant(policy, principal, action):
    decision = allowed(policy, principal, action, PUBLISHED)
    assert not decision
    assert principal.department_code in decision.reason and CODE in decision.reason


@pytest.mark.parametrize("action", [Action.EXCHANGE_SUBSCRIBE, Action.EXCHANGE_PULL])
def test_exchange_is_allowed_with_a_grant(action):
    grants = AlwaysGranted()
    decision = allowed(Policy(grants), OTHER_CONSUMER, action, PUBLISHED)
    assert decision and "G-1" in decision.reason
    assert grants.asked == [(OTHER_PROVIDER, CODE)]


def test_grants_are_per_department_and_resource():
    policy = Policy(GrantLookupStub({(OTHER_PROVIDER, CODE)}))
    assert allowed(policy, OTHER_CONSUMER, Action.EXCHANGE_SUBSCRIBE, PUBLISHED)
    assert not allowed(policy, OTHER_CONSUMER, Action.EXCHANGE_SUBSCRIBE, Target.resource("311140001/000102",
                                                                                         PROVIDER))
    assert not allowed(policy, who(PROVIDER, "consumer"), Action.EXCHANGE_SUBSCRIBE, PUBLISHED)


# -- draft visibility and require -------------------------------------------------------------------------

@pytest.mark.parametrize(("principal", "expected"), [
    (SYSTEM, None), (ADMIN, PROVIDER), (OTHER_CONSUMER, OTHER_PROVIDER), (who(OTHER_PROVIDER, "operator"),
                                                                          OTHER_PROVIDER),
], ids=lambda value: ids(value) if isinstance(value, Principal) else str(value))
def test_draft_visibility(policy, principal, expected):
    assert policy.draft_visibility(principal) == expected


def test_require_returns_the_decision_or_raises_with_the_reason(policy):
    assert policy.require(ADMIN, Action.CATALOG_PUBLISH, PUBLISHED).allowed
    with pytest.raises(PermissionDenied) as caught:
        policy.require(OTHER_ADMIN, Action.CATALOG_PUBLISH, PUBLISHED)
    denied = caught.value
    assert denied.action is Action.CATALOG_PUBLISH and denied.target == PUBLISHED
    assert OTHER_PROVIDER in denied.reason and PROVIDER in denied.reason
    assert str(denied).startswith(f"catalog.publish on resource:{CODE}: ")
    assert denied.reason in str(denied)


def test_targets_name_themselves_for_the_audit_trail():
    assert str(PUBLISHED) == f"resource:{CODE}"
    assert str(AUDIT_TRAIL) == "audit" and str(NODE_KEYS) == "keys"
    assert str(Target.demand("D-7", OTHER_PROVIDER, PROVIDER)) == "demand:D-7"


# -- the coordinator (政务数据主管部门) -----------------------------------------------------------------------

NODE_DEPT = "11100000000013542N"
DEMAND = Target.demand("XQ-1", OTHER_PROVIDER, PROVIDER)


def test_only_a_coordinator_of_the_node_department_reviews_a_demand():
    policy = Policy(node_department=NODE_DEPT)
    assert allowed(policy, who(NODE_DEPT, "coordinator"), Action.DEMAND_REVIEW, DEMAND)
    for principal, reason in ((who(PROVIDER, "coordinator"), f"running the node ({NODE_DEPT})"),
                              (who(NODE_DEPT, "reviewer", "operator"), "needs the coordinator role"),
                              (who(PROVIDER, "reviewer"), "needs the coordinator role")):
        decision = allowed(policy, principal, Action.DEMAND_REVIEW, DEMAND)
        assert not decision and reason in decision.reason


def test_a_coordinator_without_a_node_department_is_told_to_configure_it():
    decision = allowed(Policy(), who(PROVIDER, "coordinator"), Action.DEMAND_REVIEW, DEMAND)
    assert not decision and "node.department_code" in decision.reason


DISPUTE = Target.dispute("ZY-1", OTHER_PROVIDER, PROVIDER)


@pytest.mark.parametrize(("principal", "action", "allowed_"), [
    (who(OTHER_PROVIDER, "consumer"), Action.DISPUTE_FILE, True),
    (who(PROVIDER, "consumer"), Action.DISPUTE_FILE, False),
    (who(PROVIDER, "reviewer"), Action.DISPUTE_ANSWER, True),
    (who(OTHER_PROVIDER, "reviewer"), Action.DISPUTE_ANSWER, False),
    (who(NODE_DEPT, "coordinator"), Action.DISPUTE_DECIDE, True),
    (who(PROVIDER, "reviewer", "coordinator"), Action.DISPUTE_DECIDE, False),
    (who(NODE_DEPT, "consumer"), Action.DISPUTE_DECIDE, False),
    (who(NODE_DEPT, "coordinator"), Action.DISPUTE_READ, True),
    (who("11100000MB0173295A", "consumer"), Action.DISPUTE_READ, False),
])
def test_disputes_are_filed_answered_and_decided_each_by_its_own_party(principal, action, allowed_):
    decision = allowed(Policy(node_department=NODE_DEPT), principal, action, DISPUTE)
    assert decision.allowed is allowed_
