"""The monthly report's files (统计月报): two CSV tables for people (UTF-8 with a BOM, Chinese headers,
CRLF, as the lists' files) and one XML document for machines, valid against ``schemas/report.xsd``
(namespace ``urn:exnode:report:v1``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from catalog.report import MonthlyReport
from node.files.lists import _csv, _iso
from security.xml import load_schema

NAMESPACE = "urn:exnode:report:v1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "report.xsd"
_NS = f"{{{NAMESPACE}}}"

RESOURCE_COLUMNS = ("资源代码", "资源名称", "提供部门代码", "使用部门数", "新增授权", "交付次数", "交付记录数", "接收记录数",
                    "查询次数", "核验次数", "异议数", "异议成立数")
DEPARTMENT_COLUMNS = ("部门代码", "责任清单按时", "责任清单逾期", "责任清单从未报送", "按时答复", "超期答复", "超期未答复",
                      "争议数", "未办结异议", "已办结异议")
RESOURCE_FIELDS = ("resource_code", "resource_name", "provider_code", "consumers", "grants", "deliveries",
                   "records_delivered", "records_received", "queries", "verifications", "objections",
                   "objections_upheld")
DEPARTMENT_FIELDS = ("department_code", "obligations_on_time", "obligations_overdue", "obligations_never_delivered",
                     "answers_on_time", "answers_late", "open_overdue", "disputes", "objections_open",
                     "objections_closed")
_XML_NAMES = {"resource_code": "resourceCode", "resource_name": "resourceName", "provider_code": "providerCode",
              "records_delivered": "recordsDelivered", "records_received": "recordsReceived",
              "objections_upheld": "objectionsUpheld", "department_code": "departmentCode",
              "obligations_on_time": "obligationsOnTime", "obligations_overdue": "obligationsOverdue",
              "obligations_never_delivered": "obligationsNeverDelivered", "answers_on_time": "answersOnTime",
              "answers_late": "answersLate", "open_overdue": "openOverdue", "objections_open": "objectionsOpen",
              "objections_closed": "objectionsClosed"}


@cache
def report_schema() -> etree.XMLSchema:
    return load_schema(SCHEMA_PATH)


def file_names(report: MonthlyReport) -> tuple[str, str, str]:
    base = f"统计月报-{report.node_id}-{report.month}"
    return f"{base}-资源.csv", f"{base}-部门.csv", f"{base}.xml"


def to_xml(report: MonthlyReport) -> bytes:
    root = etree.Element(f"{_NS}monthlyReport", nsmap={None: NAMESPACE}, version="1", node=report.node_id,
                         month=report.month, generated=_iso(report.generated))
    if report.department_code:
        root.set("department", report.department_code)
    for kind, lines, names in (("resource", report.resources, RESOURCE_FIELDS),
                               ("department", report.departments, DEPARTMENT_FIELDS)):
        for line in lines:
            element = etree.SubElement(root, f"{_NS}{kind}")
            for name in names:
                value = getattr(line, name)
                if value == "":
                    continue
                etree.SubElement(element, f"{_NS}{_XML_NAMES.get(name, name)}").text = str(value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def files(report: MonthlyReport) -> dict[str, bytes]:
    """The report's files by name: resources CSV, departments CSV, XML."""
    resources, departments, xml = file_names(report)
    return {
        resources: _csv(RESOURCE_COLUMNS, [[getattr(line, n) for n in RESOURCE_FIELDS] for line in report.resources]),
        departments: _csv(DEPARTMENT_COLUMNS, [[getattr(line, n) for n in DEPARTMENT_FIELDS]
                                               for line in report.departments]),
        xml: to_xml(report),
    }
