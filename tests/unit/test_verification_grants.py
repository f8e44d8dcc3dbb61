"""Verification grants (核验): a grant kind beside copies, through the same demand workflow. 不予共享 may be
verified only when the provider's reviewer grants it; a verification grant always has a daily quota and
never masks (it hands out no values); the policy asks for the right kind of grant and role."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog import lists as domain
from catalog.errors import InvalidField
from catalog.lists import DemandRequest, DemandState, GrantKind
from catalog.model import OpenType, ShareType
from security.identity import Principal
from security.policy import Action, Decision, Policy, Target
from tests.conftest import OTHER_PROVIDER
from tests.unit.test_lists_domain import published

NOW = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)


def verify_request(**changes: object) -> DemandRequest:
    fields = dict(requester_code=OTHER_PROVIDER, resource_code="311140001/000101", items=("姓名",),
                  purpose="低保资格核验", legal_basis="社会救助暂行办法", contact="王芳", kind=GrantKind.VERIFY)
    fields.update(changes)
    return DemandRequest(**fields)  # type: ignore[arg-type]


def test_a_verification_demand_for_a_not_shared_resource_waits_for_the_reviewer():
    secret = published(share_type=ShareType.NOT_SHARED, share_condition="《婚姻登记条例》", open_type=OpenType.NOT_OPEN,
                       share_method_class=None, share_method_type=None)
    copy = domain.file_demand("XQ-1", verify_request(kind=GrantKind.COPY), secret, NOW)
    assert copy.state is DemandState.REJECTED
    verify = domain.file_demand("XQ-2", verify_request(), secret, NOW)
    assert verify.state is DemandState.UNDER_REVIEW
    approved = domain.approve(verify, "reviewer", NOW)
    grant = domain.grant_for("SQ-1", approved, NOW)
    assert (grant.kind, grant.daily_quota, dict(grant.masking)) == (GrantKind.VERIFY, domain.DEFAULT_DAILY_QUOTA, {})
    assert (grant.purpose, grant.legal_basis) == ("低保资格核验", "社会救助暂行办法")


def test_an_unconditional_resource_is_verified_on_request_with_the_quota_asked_for():
    open_resource = published(share_type=ShareType.UNCONDITIONAL, share_condition="")
    demand = domain.file_demand("XQ-3", verify_request(daily_quota=50), open_resource, NOW)
    assert demand.state is DemandState.APPROVED
    assert domain.grant_for("SQ-2", demand, NOW).daily_quota == 50


@pytest.mark.parametrize(("changes", "field"), [
    ({"daily_quota": -1}, "daily_quota"),
    ({"daily_quota": 10_000_000}, "daily_quota"),
    ({"kind": GrantKind.COPY, "daily_quota": 5}, "daily_quota"),
])
def test_a_bad_quota_is_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidField) as refused:
        domain.file_demand("XQ-4", verify_request(**changes), published(), NOW)
    assert refused.value.problems[0].field == field


class Lookup:
    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        return Decision(False, "copy: no")

    def verification_decision(self, department_code: str, resource_code: str) -> Decision:
        return Decision(True, "verification grant SQ-9")


def test_the_policy_asks_for_a_verification_grant_and_the_consumer_role():
    policy = Policy(Lookup())
    consumer = Principal("u", OTHER_PROVIDER, frozenset({"consumer"}))
    target = Target("resource", "311140001/000101")
    assert policy.decide(consumer, Action.RECORDS_VERIFY, target).reason == "verification grant SQ-9"
    assert not policy.decide(consumer, Action.RECORDS_QUERY, target)
    admin = Principal("u", OTHER_PROVIDER, frozenset({"catalog_admin"}))
    assert "consumer or platform role" in policy.decide(admin, Action.RECORDS_VERIFY, target).reason
