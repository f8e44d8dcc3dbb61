"""The holiday calendar's files: one TOML file per year of the State Council's notice.

The node ships the years it knows (``node/files/holidays/YYYY.toml``); an operator adds a year, or
corrects one, by putting ``YYYY.toml`` in ``<data>/holidays/`` (that file wins over the shipped one).
A file is::

    year = 2026
    source = "国务院办公厅关于2026年部分节假日安排的通知"
    [holidays]
    "春节" = [2026-02-15, 2026-02-16, …]
    [makeup_workdays]
    "春节" = [2026-02-14, 2026-02-28]

A file that cannot be read, or contradicts itself, is refused with a message naming the file and the
date: a wrong calendar would silently move every deadline.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from pathlib import Path

from catalog.workdays import CalendarProblem, WorkingCalendar, YearCalendar

SHIPPED = Path(__file__).parent / "holidays"
OPERATOR_DIR = "holidays"
"""Under the node's data directory."""


class HolidayFileError(ValueError):
    """A holiday file is unreadable or wrong; the message names the file."""


def _days(path: Path, table: object, key: str) -> dict[dt.date, str]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise HolidayFileError(f"{path}: [{key}] must be a table of festival name = [dates]")
    out: dict[dt.date, str] = {}
    for name, days in table.items():
        if not isinstance(days, list) or not days:
            raise HolidayFileError(f"{path}: {key}.{name} must be a non-empty list of dates (YYYY-MM-DD)")
        for day in days:
            if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
                raise HolidayFileError(f"{path}: {key}.{name}: {day!r} is not a date (write 2026-02-15, unquoted)")
            if day in out:
                raise HolidayFileError(f"{path}: {key}: {day.isoformat()} is listed twice")
            out[day] = str(name)
    return out


def read_year(path: Path) -> YearCalendar:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise HolidayFileError(f"{path}: cannot read the holiday file: {error}") from None
    unknown = set(data) - {"year", "source", "holidays", "makeup_workdays"}
    if unknown:
        raise HolidayFileError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (year, source, holidays, "
                               "makeup_workdays)")
    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or str(year) != path.stem:
        raise HolidayFileError(f"{path}: year = {year!r} must be the year the file is named after ({path.stem})")
    try:
        return YearCalendar(year, _days(path, data.get("holidays"), "holidays"),
                            _days(path, data.get("makeup_workdays"), "makeup_workdays"), str(data.get("source", "")))
    except CalendarProblem as error:
        raise HolidayFileError(f"{path}: {error}") from None


def year_files(data_dir: Path | None) -> dict[int, Path]:
    """The file of each year: the operator's where there is one, else the shipped one."""
    found: dict[int, Path] = {}
    for directory in (SHIPPED, data_dir / OPERATOR_DIR if data_dir else None):
        if directory is None or not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            if not (path.stem.isdigit() and len(path.stem) == 4):
                raise HolidayFileError(f"{path}: a holiday file is named after its year, e.g. 2027.toml")
            found[int(path.stem)] = path
    return found


def load_calendar(data_dir: Path | None, on_missing: Callable[[int], None] | None = None) -> WorkingCalendar:
    return WorkingCalendar.of([read_year(path) for path in year_files(data_dir).values()], on_missing)
