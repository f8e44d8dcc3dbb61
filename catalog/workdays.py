"""工作日: the working-day calendar that administrative time limits are counted in.

A working day is Monday to Friday, minus the statutory holidays, plus the weekend days the State
Council's yearly notice (国务院办公厅关于某年部分节假日安排的通知) declares make-up working days (调休).
The notice is data, one year at a time: the node ships the years it knows and an operator adds the next
one when it is published (node/files/holidays.py reads them). A year the calendar lacks is counted as
Saturdays and Sundays only, and the calendar remembers which years it had to guess, so the node can warn
and the metrics say so.

Deadlines follow the rule of Chinese administrative law that the day an act happens is not counted
(期间开始之日不计算在期间内): "within 5 working days" of a filing on day D ends at the close of the fifth
working day after D, i.e. at Beijing midnight after it. Pure code with the dates passed in.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

BEIJING = dt.timezone(dt.timedelta(hours=8), "CST")
MAX_WORKING_DAYS = 366
"""No time limit of the regulation is longer; a larger count is a configuration error."""


class CalendarProblem(ValueError):
    """A year's holiday data contradicts itself (the message names the date and the rule)."""


@dataclass(frozen=True)
class YearCalendar:
    """One year of the State Council's notice: holidays and make-up working days, each with its festival."""

    year: int
    holidays: Mapping[dt.date, str]
    makeup_workdays: Mapping[dt.date, str]
    source: str = ""

    def __post_init__(self) -> None:
        for day in (*self.holidays, *self.makeup_workdays):
            if day.year != self.year:
                raise CalendarProblem(f"{day.isoformat()} is not in {self.year}")
        both = sorted(set(self.holidays) & set(self.makeup_workdays))
        if both:
            raise CalendarProblem(f"{both[0].isoformat()} is both a holiday and a make-up working day")
        weekday = sorted(d for d in self.makeup_workdays if d.weekday() < 5)
        if weekday:
            raise CalendarProblem(f"make-up working day {weekday[0].isoformat()} is a weekday: 调休 moves work to a "
                                  "Saturday or Sunday")


@dataclass
class WorkingCalendar:
    """The node's calendar over the years it knows; unknown years fall back to Saturday/Sunday weekends."""

    years: Mapping[int, YearCalendar] = field(default_factory=dict)
    on_missing: Callable[[int], None] | None = None
    """Called once per year the calendar had to count without its notice (the node logs a warning)."""
    missing: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, years: Iterable[YearCalendar], on_missing: Callable[[int], None] | None = None) -> WorkingCalendar:
        return cls({y.year: y for y in years}, on_missing)

    def knows(self, year: int) -> bool:
        return year in self.years

    def note_missing(self, year: int) -> None:
        """Remember (and report once) that ``year`` is counted without its holiday notice."""
        with self._lock:
            if year in self.missing:
                return
            self.missing.add(year)
        if self.on_missing is not None:
            self.on_missing(year)

    def is_working_day(self, day: dt.date) -> bool:
        year = self.years.get(day.year)
        if year is None:
            self.note_missing(day.year)
            return day.weekday() < 5
        if day in year.makeup_workdays:
            return True
        if day in year.holidays:
            return False
        return day.weekday() < 5

    def holiday_name(self, day: dt.date) -> str:
        year = self.years.get(day.year)
        return year.holidays.get(day, "") if year else ""

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The deadline of "within ``days`` working days" of ``start``: Beijing midnight after the
        ``days``-th working day following start's (Beijing) date. The start day itself is not counted."""
        if not 0 < days <= MAX_WORKING_DAYS:
            raise ValueError(f"{days} working days: expected 1-{MAX_WORKING_DAYS}")
        day = beijing_date(start)
        counted = 0
        while counted < days:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return start_of(day + dt.timedelta(days=1))

    def working_days_between(self, start: dt.datetime, end: dt.datetime) -> int:
        """Working days whose whole day lies in [start's next day, end's day): how late an answer was,
        in the unit the deadline was set in (0 when ``end`` is not after ``start``)."""
        first, last = beijing_date(start), beijing_date(end)
        count = 0
        day = first
        while day < last:
            if self.is_working_day(day):
                count += 1
            day += dt.timedelta(days=1)
        return count


def beijing_date(at: dt.datetime) -> dt.date:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at}: deadlines need aware datetimes")
    return at.astimezone(BEIJING).date()


def start_of(day: dt.date) -> dt.datetime:
    """Beijing midnight at the start of ``day``, as an aware datetime."""
    return dt.datetime.combine(day, dt.time(), BEIJING)


def weekends_only() -> WorkingCalendar:
    """A calendar that knows no year: Saturdays and Sundays (the fallback, and unit tests)."""
    return WorkingCalendar()
