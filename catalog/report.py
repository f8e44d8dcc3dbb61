"""统计月报: the statistics a node reports upward each month, per resource and per department.

Months are Beijing calendar months. Pure data and the month rule; node/services/report.py fills it from
the database, node/files/report.py writes it as CSV and XML.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from catalog.errors import InvalidField
from catalog.workdays import start_of

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_range(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) of ``YYYY-MM`` in Beijing time."""
    found = _MONTH.fullmatch(month)
    if not found or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= 2999:
        raise InvalidField.one("month", f"{month!r} is not a month (YYYY-MM, e.g. 2026-11)")
    year, number = int(found.group(1)), int(found.group(2))
    following = dt.date(year + number // 12, number % 12 + 1, 1)
    return start_of(dt.date(year, number, 1)), start_of(following)


@dataclass(frozen=True)
class ResourceLine:
    resource_code: str
    resource_name: str
    provider_code: str
    consumers: int
    """Departments that held a live grant for it at some time in the month."""
    grants: int
    """Grants created in the month."""
    deliveries: int
    records_delivered: int
    records_received: int
    queries: int
    verifications: int
    """Request/response exchanges this node answered in the month (QueryRecords calls, VerifyClaim verdicts
    including those other nodes asked for), from its audit trail."""
    objections: int
    objections_upheld: int


@dataclass(frozen=True)
class DepartmentLine:
    department_code: str
    obligations_on_time: int
    obligations_overdue: int
    obligations_never_delivered: int
    """The responsibility list's lines of the department as they stood at the month's end."""
    answers_on_time: int
    answers_late: int
    """Stages the department answered in the month (as provider; the node's department also its compliance
    reviews), by whether the answer kept its working-day deadline."""
    open_overdue: int
    """Stages it owed at the month's end past their deadline."""
    disputes: int
    """Disputes filed in the month that it was party to."""
    objections_open: int
    objections_closed: int
    """Objections to its records open at the month's end, and answered in the month."""


@dataclass(frozen=True)
class MonthlyReport:
    node_id: str
    department_code: str
    month: str
    generated: dt.datetime
    resources: tuple[ResourceLine, ...]
    departments: tuple[DepartmentLine, ...]
    includes: tuple[str, ...] = ()
    """For a region's aggregate: the lower nodes whose reports are summed into this one's."""


def aggregate(own: MonthlyReport, lower: list[MonthlyReport]) -> MonthlyReport:
    """The region's report: this node's lines and each lower node's, summed per resource and per
    department (a resource known at several tiers is counted once per tier that served it)."""
    def summed(lines: list, key: str, kind: type) -> tuple:
        merged: dict[str, dict[str, object]] = {}
        for line in lines:
            values = dict(line.__dict__)
            entry = merged.get(values[key])
            if entry is None:
                merged[values[key]] = values
                continue
            for name, value in values.items():
                if isinstance(value, int):
                    entry[name] = int(entry[name]) + value  # type: ignore[call-overload]
                elif value and not entry[name]:
                    entry[name] = value
        return tuple(kind(**merged[k]) for k in sorted(merged))

    reports = [own, *lower]
    return MonthlyReport(
        own.node_id, own.department_code, own.month, own.generated,
        summed([line for r in reports for line in r.resources], "resource_code", ResourceLine),
        summed([line for r in reports for line in r.departments], "department_code", DepartmentLine),
        tuple(r.node_id for r in lower))
