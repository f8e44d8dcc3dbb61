"""The lists' domain without I/O: periods in Beijing time, compliance, the demand workflow by share type,
grants and their masking, and matching a demand described in Chinese."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog import lists as domain
from catalog.errors import IllegalTransition, InvalidField
from catalog.lists import (
    BEIJING,
    Compliance,
    Demand,
    DemandRequest,
    DemandState,
    Obligation,
    compliance,
    default_masking,
    grant_for,
    period_of,
)
from catalog.matching import bigrams, suggest
from catalog.model import (
    Item,
    ItemDataType,
    OpenType,
    Resource,
    ShareType,
    UpdateCycle,
    create,
    publish,
    retire,
)
from security.masking import mask_record, mask_value
from tests.conftest import OTHER_PROVIDER, PROVIDER, resource

UTC = dt.UTC
PUBLISHED = dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 2026-01-05 10:00 in Beijing
FILED = dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
LOW_INCOME = "城乡最低生活保障对象信息"
ID_NUMBER = "360426199101010071"


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BEIJING)


def published(code: str = "311140001/000101", **changes: object) -> Resource:
    return publish(create(resource(code, **changes), PUBLISHED), PUBLISHED)


def unconditional(code: str = "311140001/000106") -> Resource:
    return published(code, share_type=ShareType.UNCONDITIONAL, share_condition="")


def not_shared(code: str = "311140001/000107") -> Resource:
    return published(code, share_type=ShareType.NOT_SHARED, open_type=OpenType.NOT_OPEN,
                     share_condition="涉及个人隐私，依《个人信息保护法》不予共享")


def monthly(grace_days: int | None = None, cycle: UpdateCycle = UpdateCycle.MONTHLY) -> Obligation:
    return Obligation(PROVIDER, "311140001/000101", LOW_INCOME, cycle, grace_days, since=PUBLISHED)


def request(**changes: object) -> DemandRequest:
    fields: dict[str, object] = dict(
        requester_code=OTHER_PROVIDER, resource_code="311140001/000101", items=("姓名", "公民身份号码"),
        purpose="低保家庭经济状况核对", legal_basis="《社会救助暂行办法》第十一条", frequency=UpdateCycle.MONTHLY,
        contact="王五 0471-6612345")
    fields.update(changes)
    return DemandRequest(**fields)  # type: ignore[arg-type]


def file(res: Resource | None, **changes: object) -> Demand:
    return domain.file_demand("XQ-20260302-00000001", request(**changes), res, FILED)


# -- periods --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cycle", "at", "start", "end"), [
    (UpdateCycle.REALTIME, bj(2026, 3, 10, 23, 59), bj(2026, 3, 10), bj(2026, 3, 11)),
    (UpdateCycle.DAILY, bj(2026, 3, 10, 0, 0), bj(2026, 3, 10), bj(2026, 3, 11)),
    (UpdateCycle.DAILY, bj(2026, 12, 31, 12), bj(2026, 12, 31), bj(2027, 1, 1)),
    (UpdateCycle.WEEKLY, bj(2026, 3, 2), bj(2026, 3, 2), bj(2026, 3, 9)),  # a Monday
    (UpdateCycle.WEEKLY, bj(2026, 3, 8, 23, 59), bj(2026, 3, 2), bj(2026, 3, 9)),  # the Sunday after
    (UpdateCycle.WEEKLY, bj(2026, 1, 1), bj(2025, 12, 29), bj(2026, 1, 5)),  # a week across the new year
    (UpdateCycle.MONTHLY, bj(2026, 2, 14), bj(2026, 2, 1), bj(2026, 3, 1)),
    (UpdateCycle.MONTHLY, bj(2026, 12, 31, 23, 59), bj(2026, 12, 1), bj(2027, 1, 1)),
    (UpdateCycle.QUARTERLY, bj(2026, 1, 1), bj(2026, 1, 1), bj(2026, 4, 1)),
    (UpdateCycle.QUARTERLY, bj(2026, 6, 30, 23, 59), bj(2026, 4, 1), bj(2026, 7, 1)),
    (UpdateCycle.QUARTERLY, bj(2026, 11, 15), bj(2026, 10, 1), bj(2027, 1, 1)),
    (UpdateCycle.HALF_YEARLY, bj(2026, 6, 30, 23, 59), bj(2026, 1, 1), bj(2026, 7, 1)),
    (UpdateCycle.HALF_YEARLY, bj(2026, 7, 1), bj(2026, 7, 1), bj(2027, 1, 1)),
    (UpdateCycle.YEARLY, bj(2026, 7, 1), bj(2026, 1, 1), bj(2027, 1, 1)),
])
def test_period_of_every_cycle(cycle, at, start, end):
    assert period_of(cycle, at) == (start, end)


@pytest.mark.parametrize(("day", "first", "last_exclusive"), [
    ((2026, 3, 1), (2026, 3, 1), (2026, 3, 11)),
    ((2026, 3, 10), (2026, 3, 1), (2026, 3, 11)),
    ((2026, 3, 11), (2026, 3, 11), (2026, 3, 21)),
    ((2026, 3, 20), (2026, 3, 11), (2026, 3, 21)),
    ((2026, 3, 21), (2026, 3, 21), (2026, 4, 1)),
    ((2026, 3, 31), (2026, 3, 21), (2026, 4, 1)),  # 下旬 of a 31-day month has 11 days
    ((2026, 4, 30), (2026, 4, 21), (2026, 5, 1)),
    ((2026, 2, 28), (2026, 2, 21), (2026, 3, 1)),  # 下旬 of February in a common year: 8 days
    ((2024, 2, 28), (2024, 2, 21), (2024, 3, 1)),
    ((2024, 2, 29), (2024, 2, 21), (2024, 3, 1)),  # leap year: February 29 is in 下旬
    ((2026, 12, 31), (2026, 12, 21), (2027, 1, 1)),
])
def test_ten_day_periods_split_at_the_10th_and_20th_and_end_with_the_month(day, first, last_exclusive):
    for hour in (0, 12, 23):
        assert period_of(UpdateCycle.TEN_DAYS, bj(*day, hour)) == (bj(*first), bj(*last_exclusive))


def test_periods_are_counted_in_beijing_time():
    late_utc = dt.datetime(2026, 3, 31, 16, 30, tzinfo=UTC)  # already 2026-04-01 00:30 in Beijing
    assert period_of(UpdateCycle.DAILY, late_utc) == (bj(2026, 4, 1), bj(2026, 4, 2))
    assert period_of(UpdateCycle.MONTHLY, late_utc) == (bj(2026, 4, 1), bj(2026, 5, 1))
    assert period_of(UpdateCycle.QUARTERLY, late_utc) == (bj(2026, 4, 1), bj(2026, 7, 1))
    assert period_of(UpdateCycle.TEN_DAYS, late_utc) == (bj(2026, 4, 1), bj(2026, 4, 11))
    still_march = dt.datetime(2026, 3, 31, 15, 59, tzinfo=UTC)  # 23:59 in Beijing
    assert period_of(UpdateCycle.MONTHLY, still_march) == (bj(2026, 3, 1), bj(2026, 4, 1))
    assert period_of(UpdateCycle.TEN_DAYS, still_march) == (bj(2026, 3, 21), bj(2026, 4, 1))
    sunday_night_utc = dt.datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # Monday 00:30 in Beijing
    assert period_of(UpdateCycle.WEEKLY, sunday_night_utc) == (bj(2026, 3, 2), bj(2026, 3, 9))
    new_year = dt.datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert period_of(UpdateCycle.YEARLY, new_year) == (bj(2027, 1, 1), bj(2028, 1, 1))
    start, end = period_of(UpdateCycle.DAILY, late_utc)
    assert start.astimezone(UTC) == dt.datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    assert end - start == dt.timedelta(days=1)


def test_other_has_no_periods():
    with pytest.raises(ValueError, match="OTHER"):
        period_of(UpdateCycle.OTHER, FILED)


# -- compliance -----------------------------------------------------------------------------------------

def test_not_yet_due_before_the_first_due_time():
    status = compliance(monthly(), [], bj(2026, 2, 5, 23, 59))  # January is due 5 days after its end
    assert status.compliance is Compliance.NOT_YET_DUE
    assert status.next_due == bj(2026, 2, 6)
    assert status.overdue_by == dt.timedelta(0) and status.missed_periods == 0 and status.last_delivery is None


def test_never_delivered_says_how_late():
    status = compliance(monthly(), [], bj(2026, 2, 10, 12))
    assert status.compliance is Compliance.NEVER_DELIVERED
    assert status.overdue_by == dt.timedelta(days=4, hours=12)
    assert status.next_due == bj(2026, 2, 6) and status.missed_periods == 1 and status.deliveries == 0
    later = compliance(monthly(), [], bj(2026, 3, 10, 12))
    assert later.compliance is Compliance.NEVER_DELIVERED
    assert later.overdue_by == dt.timedelta(days=32, hours=12)  # since January's due, the first one missed
    assert later.missed_periods == 2


def test_on_time():
    delivered = bj(2026, 1, 20, 10)
    status = compliance(monthly(), [delivered], bj(2026, 2, 10))
    assert status.compliance is Compliance.ON_TIME
    assert status.last_delivery == delivered and status.deliveries == 1
    assert status.next_due == bj(2026, 3, 6) and status.overdue_by == dt.timedelta(0)
    assert status.missed_periods == 0


def test_a_delivery_within_the_grace_days_settles_the_previous_period():
    delivered = bj(2026, 2, 3)  # February, but within January's grace days (due 02-06)
    status = compliance(monthly(), [delivered], bj(2026, 2, 10))
    assert status.compliance is Compliance.ON_TIME and status.missed_periods == 0
    assert status.next_due == bj(2026, 3, 6)
    # that delivery counted for January, so February still needs its own
    march = compliance(monthly(), [delivered], bj(2026, 3, 10))
    assert march.compliance is Compliance.OVERDUE
    assert march.overdue_by == dt.timedelta(days=4) and march.missed_periods == 1


def test_overdue_says_how_late_after_a_missed_period():
    status = compliance(monthly(), [bj(2026, 1, 20)], bj(2026, 3, 9, 6))  # February missed (due 03-06)
    assert status.compliance is Compliance.OVERDUE
    assert status.overdue_by == dt.timedelta(days=3, hours=6)
    assert status.next_due == bj(2026, 3, 6) and status.missed_periods == 1
    assert status.last_delivery == bj(2026, 1, 20)


def test_missed_periods_count_an_old_gap_even_when_on_time_now():
    deliveries = [bj(2026, 1, 20), bj(2026, 3, 20)]  # February never delivered
    status = compliance(monthly(), deliveries, bj(2026, 4, 10))
    assert status.compliance is Compliance.ON_TIME
    assert status.missed_periods == 1 and status.deliveries == 2 and status.overdue_by == dt.timedelta(0)


def test_a_late_delivery_ends_the_overdue_state_but_the_missed_period_stays_counted():
    """Nothing arrived for January (due 02-06); the data arrives on 02-10. The department has caught
    up: it is no longer late, and January stays a missed period."""
    status = compliance(monthly(), [bj(2026, 2, 10)], bj(2026, 2, 10, 1))
    assert status.compliance is Compliance.ON_TIME
    assert status.overdue_by == dt.timedelta(0) and status.missed_periods == 1
    assert status.next_due is not None and status.next_due > bj(2026, 2, 10, 1)
    later = compliance(monthly(), [bj(2026, 2, 10)], bj(2026, 2, 25))
    assert later.compliance is Compliance.ON_TIME and later.overdue_by == dt.timedelta(0)


def test_future_deliveries_are_ignored():
    status = compliance(monthly(), [bj(2026, 1, 20)], bj(2026, 1, 10))
    assert status.compliance is Compliance.NOT_YET_DUE and status.deliveries == 0


def test_other_cycle_is_unscheduled():
    obligation = monthly(cycle=UpdateCycle.OTHER)
    assert obligation.effective_grace_days is None and "其他" in obligation.due_rule
    status = compliance(obligation, [bj(2026, 1, 20)], bj(2027, 1, 1))
    assert status.compliance is Compliance.UNSCHEDULED
    assert status.next_due is None and status.last_delivery == bj(2026, 1, 20) and status.deliveries == 1
    assert compliance(obligation, [], bj(2027, 1, 1)).compliance is Compliance.UNSCHEDULED


def test_explicit_grace_days_override_the_cycles_default():
    now = bj(2026, 2, 3)
    assert compliance(monthly(), [], now).compliance is Compliance.NOT_YET_DUE  # default: 5 days
    strict = monthly(grace_days=0)
    assert strict.effective_grace_days == 0 and "0 日内" in strict.due_rule
    status = compliance(strict, [], now)
    assert status.compliance is Compliance.NEVER_DELIVERED and status.overdue_by == dt.timedelta(days=2)
    lenient = monthly(grace_days=30)
    assert compliance(lenient, [], bj(2026, 3, 2)).compliance is Compliance.NOT_YET_DUE
    assert compliance(lenient, [], bj(2026, 3, 4)).compliance is Compliance.NEVER_DELIVERED


def test_ten_day_cycle_in_february_of_a_leap_year():
    obligation = Obligation(PROVIDER, "315003140001/000001", "临时救助备用金使用信息", UpdateCycle.TEN_DAYS, None,
                            since=bj(2024, 2, 21, 9))
    # 下旬 of February 2024 ends on 02-29; due 3 days after 03-01 → 03-04
    assert compliance(obligation, [], bj(2024, 3, 3, 23)).compliance is Compliance.NOT_YET_DUE
    status = compliance(obligation, [], bj(2024, 3, 4, 1))
    assert status.compliance is Compliance.NEVER_DELIVERED and status.overdue_by == dt.timedelta(hours=1)
    assert compliance(obligation, [bj(2024, 2, 29, 18)], bj(2024, 3, 4, 1)).compliance is Compliance.ON_TIME


def test_derived_obligations_are_the_published_resources():
    draft = create(resource("311140001/000102"), PUBLISHED)
    lines = domain.derived_obligations([published(), draft, retire(not_shared(), FILED), not_shared("311140001/000108")])
    assert [o.resource_code for o in lines] == ["311140001/000101", "311140001/000108"]
    first = lines[0]
    assert first.department_code == PROVIDER and first.since == PUBLISHED and not first.explicit
    assert first.items == ("公民身份号码", "姓名", "保障金额", "纳入保障日期")


# -- demands --------------------------------------------------------------------------------------------

def test_unconditional_resource_is_approved_at_once():
    demand = file(unconditional(), resource_code="311140001/000106")
    assert demand.state is DemandState.APPROVED
    assert demand.provider_code == PROVIDER and demand.resource_name == LOW_INCOME
    assert "无条件共享" in demand.reason and demand.decided_by == "rule:无条件共享"


def test_conditional_resource_goes_to_review():
    demand = file(published())
    assert demand.state is DemandState.UNDER_REVIEW and demand.provider_code == PROVIDER
    # Monday 2026-03-02 09:00 in Beijing + 5 working days: Tuesday to the next Monday, due at its end
    assert demand.review_deadline == demand.answer_deadline == bj(2026, 3, 10)
    assert demand.request.items == ("姓名", "公民身份号码")


def test_not_shared_resource_is_rejected_citing_the_rule():
    demand = file(not_shared(), resource_code="311140001/000107")
    assert demand.state is DemandState.REJECTED
    assert demand.reason.startswith("不予共享") and "个人信息保护法" in demand.reason
    assert demand.decided_by == "rule:不予共享"


def test_all_items_when_none_are_named():
    demand = file(published(), items=())
    assert demand.request.items == ("公民身份号码", "姓名", "保障金额", "纳入保障日期")


def test_a_description_only_demand_waits_to_be_linked():
    demand = file(None, resource_code="", items=(), description="需要低保对象的身份信息，用于医疗救助核对")
    assert demand.state is DemandState.SUBMITTED and demand.provider_code == ""
    linked = domain.link(demand, "311140001/000101", published(), FILED + dt.timedelta(hours=1))
    assert linked.state is DemandState.UNDER_REVIEW and linked.resource_code == "311140001/000101"
    assert linked.version == demand.version + 1 and linked.provider_code == PROVIDER
    with pytest.raises(IllegalTransition, match="UNDER_REVIEW"):
        domain.link(linked, "311140001/000101", published(), FILED)


def test_linking_translates_the_requesters_item_names_to_the_resources():
    demand = file(None, resource_code="", items=("身份证号", "姓名"), description="低保对象身份核对")
    linked = domain.link(demand, "311140001/000101", published(), FILED)
    assert linked.request.items == ("公民身份号码", "姓名")


def test_neither_code_nor_description_names_resource_code():
    with pytest.raises(InvalidField) as caught:
        file(None, resource_code="", purpose="", contact=" ")
    fields = {p.field for p in caught.value.problems}
    assert fields == {"resource_code", "purpose", "contact"}


def test_retired_resource_is_refused_naming_resource_code():
    with pytest.raises(InvalidField, match="RETIRED") as caught:
        file(retire(published(), FILED))
    assert [p.field for p in caught.value.problems] == ["resource_code"]


def test_unknown_resource_is_refused_naming_resource_code():
    with pytest.raises(InvalidField, match="not in the catalog") as caught:
        file(None, resource_code="311140001/999999")
    assert [p.field for p in caught.value.problems] == ["resource_code"]


def test_items_not_in_the_resource_are_named_by_index():
    with pytest.raises(InvalidField) as caught:
        file(published(), items=("姓名", "身份证号", "家庭住址"))
    assert [p.field for p in caught.value.problems] == ["items[1]", "items[2]"]
    assert "身份证号" in str(caught.value)


def test_bad_item_lists_are_named():
    with pytest.raises(InvalidField) as caught:
        file(published(), items=("姓名", "", "姓名"))
    assert [p.field for p in caught.value.problems] == ["items[1]", "items[2]"]


def test_approve_a_withdrawn_demand_names_its_state():
    withdrawn = domain.withdraw(file(published()), FILED)
    assert withdrawn.state is DemandState.WITHDRAWN and withdrawn.reason
    with pytest.raises(IllegalTransition, match="WITHDRAWN") as caught:
        domain.approve(withdrawn, "reviewer", FILED)
    assert caught.value.state == "WITHDRAWN" and "demand" in str(caught.value)


def test_fulfil_a_rejected_demand_names_its_state():
    rejected = domain.reject(file(published()), "reviewer", "用途与共享条件不符", FILED)
    assert rejected.state is DemandState.REJECTED and rejected.reason == "用途与共享条件不符"
    with pytest.raises(IllegalTransition, match="REJECTED"):
        domain.fulfil(rejected, FILED)


def test_reject_without_a_reason_names_reason():
    demand = file(published())
    for reason in ("", "   "):
        with pytest.raises(InvalidField) as caught:
            domain.reject(demand, "reviewer", reason, FILED)
        assert [p.field for p in caught.value.problems] == ["reason"]


def test_approve_then_fulfil():
    approved = domain.approve(file(published()), "reviewer@mca", FILED)
    assert approved.state is DemandState.APPROVED and approved.decided_by == "reviewer@mca"
    done = domain.fulfil(approved, FILED + dt.timedelta(days=3))
    assert done.state is DemandState.FULFILLED and done.version == approved.version + 1
    with pytest.raises(IllegalTransition, match="FULFILLED"):
        domain.withdraw(done, FILED)


def test_only_a_description_only_demand_expires_and_only_after_its_deadline():
    demand = domain.file_demand("XQ-1", DemandRequest(OTHER_PROVIDER, description="低保对象名单", purpose="p",
                                                      legal_basis="b", contact="c"), None, FILED)
    assert demand.state is DemandState.SUBMITTED
    with pytest.raises(IllegalTransition, match="SUBMITTED"):
        domain.expire(demand, demand.review_deadline - dt.timedelta(seconds=1))
    expired = domain.expire(demand, demand.review_deadline)
    assert expired.state is DemandState.EXPIRED and demand.review_deadline.strftime("%Y-%m-%d") in expired.reason
    reviewing = file(published())
    with pytest.raises(IllegalTransition, match="UNDER_REVIEW"):  # a stage a department owes escalates instead
        domain.expire(reviewing, reviewing.review_deadline + dt.timedelta(days=1))


# -- grants ---------------------------------------------------------------------------------------------

def approved(**changes: object) -> Demand:
    return domain.approve(file(published(), **changes), "reviewer", FILED)


def test_grant_covers_the_demanded_items_for_a_year_with_identifiers_masked():
    grant = grant_for("SQ-1", approved(), FILED)
    assert grant.consumer_code == OTHER_PROVIDER and grant.provider_code == PROVIDER
    assert grant.items == ("姓名", "公民身份号码") and grant.demand_id == "XQ-20260302-00000001"
    assert grant.expires_at == FILED + dt.timedelta(days=365)
    assert dict(grant.masking) == {"公民身份号码": "keep:6,4"}
    assert grant.live(FILED) and grant.state(FILED) == "ACTIVE"
    assert not grant.live(grant.expires_at) and grant.state(grant.expires_at) == "EXPIRED"


def test_grant_of_a_subset_with_an_expiry_and_explicit_masking():
    until = FILED + dt.timedelta(days=30)
    grant = grant_for("SQ-1", approved(items=("姓名", "公民身份号码", "保障金额")), FILED, expires_at=until,
                      items=["公民身份号码"], masking={"公民身份号码": "hash"})
    assert grant.items == ("公民身份号码",) and grant.expires_at == until
    assert dict(grant.masking) == {"公民身份号码": "hash"}
    bare = grant_for("SQ-2", approved(), FILED, masking={})
    assert dict(bare.masking) == {}


def test_grant_refuses_items_not_demanded_a_past_expiry_and_bad_masking():
    with pytest.raises(InvalidField) as caught:
        grant_for("SQ-1", approved(), FILED, items=["姓名", "保障金额"], expires_at=FILED,
                  masking={"姓名": "keep:1", "纳入保障日期": "hide"})
    fields = [p.field for p in caught.value.problems]
    assert fields == ["items[1]", "expires_at", "masking[姓名]", "masking[纳入保障日期]"]
    assert "keep:FIRST,LAST" in str(caught.value)


@pytest.mark.parametrize("rule", ["keep:6,4", "keep:0,0", "hide", "drop", "hash"])
def test_masking_rules_accepted(rule):
    assert domain.masking_rule_problem(rule) is None


@pytest.mark.parametrize("rule", ["keep:6", "keep:1000,1", "mask", "", "hash ", "KEEP:1,1"])
def test_masking_rules_refused(rule):
    assert domain.masking_rule_problem(rule)


def test_default_masking_of_identifiers_and_phones():
    rules = default_masking(["公民身份号码", "联系电话", "姓名", "手机号码", "家庭住址", "银行账号", "保障金额"])
    assert rules == {"公民身份号码": "keep:6,4", "联系电话": "keep:3,4", "手机号码": "keep:3,4",
                     "家庭住址": "keep:6,0", "银行账号": "keep:4,4"}


def test_revoke_needs_a_reason_and_happens_once():
    grant = grant_for("SQ-1", approved(), FILED)
    with pytest.raises(InvalidField) as caught:
        domain.revoke(grant, " ", FILED)
    assert [p.field for p in caught.value.problems] == ["reason"]
    revoked = domain.revoke(grant, "用途超出授权范围", FILED + dt.timedelta(days=1))
    assert revoked.state(FILED) == "REVOKED" and not revoked.live(FILED)
    assert revoked.revoked_reason == "用途超出授权范围"
    with pytest.raises(IllegalTransition, match="REVOKED"):
        domain.revoke(revoked, "again", FILED + dt.timedelta(days=2))


# -- masking --------------------------------------------------------------------------------------------

def test_keep_first_and_last():
    assert mask_value("keep:6,4", ID_NUMBER) == "360426********0071"
    assert mask_value("keep:3,4", "13812345678") == "138****5678"
    assert mask_value("keep:6,0", "内蒙古自治区呼和浩特市新城区") == "内蒙古自治区" + "*" * 8


def test_hide_drop_hash():
    assert mask_value("hide", "张三") == "**"
    assert mask_value("drop", ID_NUMBER) is None
    digest = mask_value("hash", ID_NUMBER)
    assert digest is not None and len(digest) == 64 and int(digest, 16) >= 0
    assert digest == mask_value("hash", ID_NUMBER) != mask_value("hash", "360426199101010072")
    # the SM3 test vector of GB/T 32905-2016, appendix A.1
    assert mask_value("hash", "abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


@pytest.mark.parametrize("value", ["1", "12", "123", "1234567", "1234567890"])
def test_short_values_are_never_fully_revealed(value):
    masked = mask_value("keep:6,4", value)
    assert masked is not None and len(masked) == len(value) and masked != value and "*" in masked


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown masking rule"):
        mask_value("blur", "x")


def test_mask_record_keeps_only_granted_items_masked():
    payload = {"姓名": "张三", "公民身份号码": ID_NUMBER, "联系电话": "13812345678", "保障金额": 620,
               "家庭住址": "新城区", "备注": None}
    rules = {"公民身份号码": "keep:6,4", "联系电话": "drop", "保障金额": "hide"}
    out = mask_record(payload, ("姓名", "公民身份号码", "联系电话", "保障金额", "备注", "不存在"), rules)
    assert out == {"姓名": "张三", "公民身份号码": "360426********0071", "保障金额": "***", "备注": None}


def test_mask_record_drops_a_dropped_item_even_when_it_is_null():
    out = mask_record({"姓名": "张三", "联系电话": None}, ("姓名", "联系电话"), {"联系电话": "drop"})
    assert out == {"姓名": "张三"}


# -- matching -------------------------------------------------------------------------------------------

def catalog() -> list[Resource]:
    return [
        published("311140002/000001", name="养老机构基本信息", summary="全国养老机构的登记备案、床位和服务信息。",
                  items=(Item("机构名称", ItemDataType.STRING, 200, True),
                         Item("统一社会信用代码", ItemDataType.STRING, 18, True))),
        published("311140004/000001", name="结婚登记信息", summary="婚姻登记机关办理的结婚登记记录。",
                  items=(Item("男方姓名", ItemDataType.STRING, 50, True),
                         Item("男方公民身份号码", ItemDataType.STRING, 18, True))),
        published("311140001/000003", name="特困人员救助供养对象信息", summary="特困人员认定及供养方式信息。",
                  items=(Item("姓名", ItemDataType.STRING, 50, True),
                         Item("公民身份号码", ItemDataType.STRING, 18, True))),
        published(),  # 城乡最低生活保障对象信息: its summary speaks of 低保对象 and 核验
    ]


def test_bigrams_of_chinese_text():
    assert bigrams("低保对象 身份核对") == {"低保", "保对", "对象", "身份", "份核", "核对"}
    assert bigrams("A，低") == {"a", "低"}
    assert bigrams("") == set()


def test_a_chinese_description_ranks_the_low_income_resource_first():
    found = suggest("低保对象 身份核对", [], catalog())
    assert found[0].resource.latest.metadata.name == LOW_INCOME
    assert all(a.score >= b.score for a, b in zip(found, found[1:], strict=False))
    assert "311140002/000001" not in [s.resource.code for s in found[:1]]


def test_items_match_through_synonyms():
    found = suggest("低保", ["身份证号"], catalog())
    best = found[0]
    assert best.resource.latest.metadata.name == LOW_INCOME and best.matched_items == ("公民身份号码",)
    other_way = published("311140009/000002", name="孤儿基本生活保障信息",
                          items=(Item("身份证号", ItemDataType.STRING, 18, True),))
    (match,) = suggest("孤儿", ["公民身份号码"], [other_way])
    assert match.matched_items == ("身份证号",)


def test_nothing_in_common_suggests_nothing():
    assert suggest("天气预报", [], catalog()) == []
    assert len(suggest("信息", [], catalog(), limit=2)) == 2

