"""统计月报 without I/O: Beijing months, the XML written and read back (valid against report.xsd), the
region's aggregate summing per resource and department, and the signed statement's bytes."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from catalog.errors import InvalidField
from catalog.report import DepartmentLine, MonthlyReport, ResourceLine, aggregate, month_range
from catalog.workdays import BEIJING
from node.files.report import files, from_xml, report_schema, to_xml
from security.report import report_signing_input

DEPT = "11100000MB01284764"
OTHER = "11150100011627354Q"


def line(code: str, grants: int, provider: str = DEPT) -> ResourceLine:
    return ResourceLine(code, "城乡最低生活保障对象信息", provider, 1, grants, 2, 40, 40, 0, 0, 1, 0)


def report(node: str, *lines: ResourceLine, departments: tuple[DepartmentLine, ...] = ()) -> MonthlyReport:
    return MonthlyReport(node, DEPT, "2026-11", dt.datetime(2026, 12, 1, 9, tzinfo=BEIJING), lines, departments)


def test_a_month_is_a_beijing_calendar_month():
    assert month_range("2026-12") == (dt.datetime(2026, 12, 1, tzinfo=BEIJING), dt.datetime(2027, 1, 1, tzinfo=BEIJING))
    for bad in ("2026-13", "2026-1", "26-11", "2026-11-01", ""):
        with pytest.raises(InvalidField, match="month"):
            month_range(bad)


def test_the_xml_reads_back_as_written_and_is_valid():
    written = report("hhht", line("311140001/000001", 3),
                     departments=(DepartmentLine(DEPT, 1, 2, 3, 4, 5, 6, 7, 8, 9),))
    data = to_xml(written)
    report_schema().assertValid(etree.fromstring(data))
    assert from_xml(data) == written


def test_the_region_sums_its_lower_nodes_per_resource_and_department():
    own = report("nmg", line("311140001/000001", 1), departments=(DepartmentLine(DEPT, 1, 0, 0, 1, 0, 0, 0, 0, 0),))
    lower = report("hhht", line("311140001/000001", 2), line("311140002/000001", 5, OTHER),
                   departments=(DepartmentLine(DEPT, 0, 1, 0, 0, 1, 0, 1, 0, 0),))
    region = aggregate(own, [lower])
    assert region.includes == ("hhht",) and region.node_id == "nmg"
    assert [(r.resource_code, r.grants, r.deliveries) for r in region.resources] == [
        ("311140001/000001", 3, 4), ("311140002/000001", 5, 2)]
    [department] = region.departments
    assert (department.obligations_on_time, department.obligations_overdue, department.disputes) == (1, 1, 1)
    xml = to_xml(region)
    report_schema().assertValid(etree.fromstring(xml))
    assert b'scope="region"' in xml and b'<includes node="hhht"/>' in xml


def test_the_signed_statement_names_each_file_by_its_digest():
    written = files(report("hhht", line("311140001/000001", 1)))
    statement = report_signing_input("hhht", "2026-11", written)
    assert statement.startswith(b"exnode monthly report v1\nhhht\n2026-11\n")
    assert len(statement.splitlines()) == 3 + 3
    assert report_signing_input("hhht", "2026-11", {**written, next(iter(written)): b"x"}) != statement
