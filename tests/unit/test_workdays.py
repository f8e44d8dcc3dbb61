"""Working days (工作日) as the State Council's notices define them, and the demand stages counted in them:
the 2026 Spring Festival and National Day with their 调休 weekends, a year the calendar lacks, the
holiday files an operator writes, the compliance review and the provider's answer, late answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from catalog import lists as domain
from catalog.errors import IllegalTransition, InvalidField
from catalog.lists import Deadlines, DemandRequest, DemandState
from catalog.model import Resource, ShareType, create, publish
from catalog.workdays import BEIJING, CalendarProblem, WorkingCalendar, YearCalendar
from node.files.holidays import SHIPPED, HolidayFileError, load_calendar, read_year
from tests.conftest import OTHER_PROVIDER, resource

SHIPPED_CALENDAR = load_calendar(None)


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BEIJING)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# -- the calendar ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("date", "working", "why"), [
    ("2026-02-13", True, "Friday before the Spring Festival"),
    ("2026-02-14", True, "Saturday worked (调休 for the Spring Festival)"),
    ("2026-02-16", False, "除夕, Monday: holiday"),
    ("2026-02-23", False, "Monday, last day of the Spring Festival"),
    ("2026-02-24", True, "Tuesday after it"),
    ("2026-02-28", True, "Saturday worked (调休)"),
    ("2026-03-01", False, "an ordinary Sunday"),
    ("2026-09-20", True, "Sunday worked (调休 for National Day)"),
    ("2026-09-25", False, "中秋节, Friday"),
    ("2026-10-01", False, "国庆节"),
    ("2026-10-07", False, "Wednesday, last day of National Day"),
    ("2026-10-08", True, "Thursday after it"),
    ("2026-10-10", True, "Saturday worked (调休)"),
    ("2025-10-06", False, "中秋节 2025 inside National Day"),
    ("2025-09-28", True, "Sunday worked in 2025"),
])
def test_working_days_follow_the_state_council_notice(date: str, working: bool, why: str):
    assert SHIPPED_CALENDAR.is_working_day(day(date)) is working, why


@pytest.mark.parametrize(("start", "days", "last_day"), [
    # filed Friday before the Spring Festival: Sat 14 (调休) is the 1st, then Tue 24 … Fri 27 is the 5th
    (bj(2026, 2, 13, 16), 5, "2026-02-27"),
    (bj(2026, 2, 13, 16), 10, "2026-03-05"),  # Sat 28 (调休) counts
    (bj(2026, 2, 13, 16), 2, "2026-02-24"),
    # filed on 除夕 (a holiday): counting starts the next day all the same
    (bj(2026, 2, 16, 10), 1, "2026-02-24"),
    # filed before the Mid-autumn Festival and National Day: Sep 28-30, then Oct 8, 9
    (bj(2026, 9, 24, 9), 5, "2026-10-09"),
    (bj(2026, 9, 24, 9), 10, "2026-10-15"),  # Sat Oct 10 (调休) counts
    (bj(2026, 9, 18, 9), 1, "2026-09-20"),  # Sunday worked
    # 23:30 UTC on Oct 9 is already Saturday Oct 10 in Beijing: counting starts Sunday
    (dt.datetime(2026, 10, 9, 23, 30, tzinfo=dt.UTC), 1, "2026-10-12"),
])
def test_a_deadline_ends_at_beijing_midnight_after_the_last_working_day(start: dt.datetime, days: int,
                                                                        last_day: str):
    deadline = SHIPPED_CALENDAR.add_working_days(start, days)
    assert deadline == dt.datetime.combine(day(last_day) + dt.timedelta(days=1), dt.time(), BEIJING)


def test_a_missing_year_counts_weekends_only_and_is_reported_once():
    reported: list[int] = []
    calendar = WorkingCalendar.of(SHIPPED_CALENDAR.years.values(), reported.append)
    assert not calendar.knows(2031)
    # 2031-01-01 is a Wednesday: without the notice it is counted as a working day
    assert calendar.add_working_days(bj(2030, 12, 31, 9), 3) == bj(2031, 1, 4)
    assert calendar.is_working_day(day("2031-01-04")) is False  # Saturday
    assert calendar.is_working_day(day("2031-01-06")) is True
    assert reported == [2031] and calendar.missing == {2031}
    assert calendar.is_working_day(day("2026-02-14")) is True  # the known years are untouched


def test_the_shipped_files_are_the_years_the_node_knows():
    assert sorted(SHIPPED_CALENDAR.years) == [2025, 2026]
    year = SHIPPED_CALENDAR.years[2026]
    assert len([d for d in year.holidays if d.weekday() < 5]) == 19  # weekday holidays in 2026
    assert sorted(d.isoformat() for d in year.makeup_workdays) == [
        "2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]
    assert SHIPPED_CALENDAR.holiday_name(day("2026-02-17")) == "春节"
    assert sorted(p.name for p in SHIPPED.glob("*.toml")) == ["2025.toml", "2026.toml"]


def test_an_operator_file_adds_a_year_and_overrides_a_shipped_one(tmp_path: Path):
    (tmp_path / "holidays").mkdir()
    (tmp_path / "holidays" / "2031.toml").write_text(
        'year = 2031\nsource = "test"\n[holidays]\n"元旦" = [2031-01-01]\n[makeup_workdays]\n"元旦" = [2031-01-04]\n',
        encoding="utf-8")
    (tmp_path / "holidays" / "2026.toml").write_text('year = 2026\n[holidays]\n"测试" = [2026-03-02]\n',
                                                     encoding="utf-8")
    calendar = load_calendar(tmp_path)
    assert calendar.is_working_day(day("2031-01-01")) is False and calendar.is_working_day(day("2031-01-04"))
    assert calendar.is_working_day(day("2026-03-02")) is False  # the operator's 2026 wins
    assert calendar.is_working_day(day("2026-02-16")) is True  # …entirely: its Spring Festival is not listed


def test_2027_is_not_shipped_until_its_notice_so_a_deadline_into_it_counts_weekends_and_says_so(tmp_path: Path):
    """The 2027 notice (国务院办公厅, due late 2026) is not known to this release: a deadline running into
    January 2027 takes the missing-year path (Saturdays and Sundays only, reported), until an operator adds
    ``<data>/holidays/2027.toml``."""
    reported: list[int] = []
    calendar = load_calendar(None, reported.append)
    assert not calendar.knows(2027)
    # Thu 2026-12-31 + 2 working days: Fri 2027-01-01 is counted (元旦 unknown), then Mon 2027-01-04
    assert calendar.add_working_days(bj(2026, 12, 31, 9), 2) == bj(2027, 1, 5)
    assert reported == [2027]
    (tmp_path / "holidays").mkdir()
    (tmp_path / "holidays" / "2027.toml").write_text(
        'year = 2027\nsource = "operator"\n[holidays]\n"元旦" = [2027-01-01]\n', encoding="utf-8")
    known = load_calendar(tmp_path)
    assert known.knows(2027) and known.add_working_days(bj(2026, 12, 31, 9), 2) == bj(2027, 1, 6)


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("2031.toml", "year = 2030\n", "must be the year the file is named after"),
    ("2031.toml", 'year = 2031\n[holidays]\n"元旦" = ["2031-01-01"]\n', "is not a date"),
    ("2031.toml", 'year = 2031\n[holidays]\n"元旦" = [2030-01-01]\n', "2030-01-01 is not in 2031"),
    ("2031.toml", 'year = 2031\n[makeup_workdays]\n"元旦" = [2031-01-06]\n', "is a weekday"),
    ("2031.toml", 'year = 2031\n[holidays]\n"a" = [2031-01-04]\n[makeup_workdays]\n"a" = [2031-01-04]\n',
     "both a holiday and a make-up working day"),
    ("2031.toml", "year = 2031\nholiday = 1\n", "unknown key.s. holiday"),
    ("2031.toml", "year = \n", "cannot read"),
    ("next.toml", "year = 2031\n", "named after its year"),
])
def test_a_wrong_holiday_file_is_refused_naming_the_file(tmp_path: Path, name: str, text: str, problem: str):
    (tmp_path / "holidays").mkdir()
    path = tmp_path / "holidays" / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HolidayFileError, match=problem) as error:
        load_calendar(tmp_path)
    assert str(path) in str(error.value)


def test_a_year_calendar_refuses_a_weekday_as_a_makeup_day():
    with pytest.raises(CalendarProblem, match="weekday"):
        YearCalendar(2026, {}, {day("2026-03-02"): "x"})


def test_every_shipped_year_reads_back_as_written():
    for path in SHIPPED.glob("*.toml"):
        year = read_year(path)
        assert year.year == int(path.stem) and year.source and year.holidays


# -- the demand stages ----------------------------------------------------------------------------------

FILED = bj(2026, 2, 13, 16)  # Friday before the Spring Festival
DEADLINES = Deadlines(SHIPPED_CALENDAR)
REVIEWED = Deadlines(SHIPPED_CALENDAR, compliance_review=True)


def published(share_type: ShareType = ShareType.CONDITIONAL) -> Resource:
    at = bj(2026, 1, 5, 10)
    changes: dict[str, object] = {"share_type": share_type}
    if share_type is ShareType.UNCONDITIONAL:
        changes["share_condition"] = ""
    return publish(create(resource("311140001/000101", **changes), at), at)


def demand_for(res: Resource, deadlines: Deadlines = DEADLINES, on_platform: bool = True) -> domain.Demand:
    return domain.file_demand("XQ-1", DemandRequest(OTHER_PROVIDER, res.code, purpose="低保复核", legal_basis="办法",
                                                    contact="王芳"), res, FILED, deadlines, on_platform)


def test_the_provider_answers_within_5_working_days_across_the_spring_festival():
    demand = demand_for(published())
    assert demand.state is DemandState.UNDER_REVIEW
    assert demand.answer_deadline == demand.review_deadline == bj(2026, 2, 28)  # end of Friday 27
    assert demand_for(published(), on_platform=False).answer_deadline == bj(2026, 3, 6)  # 10 days: end of Mar 5


def test_an_answer_after_the_deadline_is_taken_and_recorded_as_late():
    demand = demand_for(published())
    on_time = domain.approve(demand, "li", bj(2026, 2, 27, 23, 59))
    assert on_time.state is DemandState.APPROVED and not on_time.answer_late
    late = domain.reject(demand, "li", "数据尚在核实", bj(2026, 2, 28, 9))
    assert late.state is DemandState.REJECTED and late.answer_late and late.answered_at == bj(2026, 2, 28, 9)


def test_the_compliance_review_comes_first_within_2_working_days():
    demand = demand_for(published(), REVIEWED)
    assert demand.state is DemandState.COMPLIANCE_REVIEW
    assert demand.compliance_deadline == demand.review_deadline == bj(2026, 2, 25)  # Sat 14 and Tue 24
    assert demand.answer_deadline is None
    forwarded = domain.review_compliance(
        demand, "chief", bj(2026, 2, 24, 10), passed=True, reason="", share_type=ShareType.CONDITIONAL,
        answer_deadline=SHIPPED_CALENDAR.add_working_days(bj(2026, 2, 24, 10), 5))
    assert forwarded.state is DemandState.UNDER_REVIEW and not forwarded.compliance_late
    assert forwarded.answer_deadline == forwarded.review_deadline == bj(2026, 3, 3)  # Feb 25-28 (Sat), Mar 2
    granted = domain.review_compliance(demand_for(published(ShareType.UNCONDITIONAL), REVIEWED), "chief",
                                       bj(2026, 2, 26, 9), passed=True, reason="", share_type=ShareType.UNCONDITIONAL,
                                       answer_deadline=bj(2026, 3, 4))
    assert granted.state is DemandState.APPROVED and granted.compliance_late and granted.decided_by == "chief"


def test_a_failed_compliance_review_gives_its_reason():
    demand = demand_for(published(), REVIEWED)
    with pytest.raises(InvalidField, match="reason"):
        domain.review_compliance(demand, "chief", FILED, passed=False, reason=" ", share_type=ShareType.CONDITIONAL,
                                 answer_deadline=FILED)
    failed = domain.review_compliance(demand, "chief", FILED, passed=False, reason="使用依据不足",
                                      share_type=ShareType.CONDITIONAL, answer_deadline=FILED)
    assert failed.state is DemandState.REJECTED and "使用依据不足" in failed.reason


def test_an_overdue_stage_escalates_once_and_stays_open():
    demand = demand_for(published())
    with pytest.raises(IllegalTransition, match="deadline"):
        domain.escalate(demand, bj(2026, 2, 27, 23))
    escalated = domain.escalate(demand, bj(2026, 2, 28, 1))
    assert escalated.state is DemandState.UNDER_REVIEW and escalated.escalated_stage == "UNDER_REVIEW"
    assert escalated.overdue(bj(2026, 2, 28, 1))
    with pytest.raises(IllegalTransition, match="escalated"):
        domain.escalate(escalated, bj(2026, 3, 2))
    answered = domain.approve(escalated, "li", bj(2026, 3, 2))
    assert answered.state is DemandState.APPROVED and answered.answer_late
