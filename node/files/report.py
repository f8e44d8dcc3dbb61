"""The monthly report's files (统计月报): two CSV tables for people (UTF-8 with a BOM, Chinese headers,
CRLF, as the lists' files) and one XML document for machines, valid against ``schemas/report.xsd``
(namespace ``urn:exnode:report:v1``)."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

from lxml import etree

from catalog.report import DepartmentLine, MonthlyReport, ResourceLine
from node.files.lists import _csv, _iso
from security.xml import load_schema, parse_untrusted

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
    if report.includes:
        root.set("scope", "region")
        for node in report.includes:
            etree.SubElement(root, f"{_NS}includes", node=node)
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


def from_xml(data: bytes, what: str = "monthly report") -> MonthlyReport:
    """A report read back from its XML (a lower node's, received upward): parsed with the hardened parser
    and valid against report.xsd, or UnsafeXml / InvalidXml naming the problems."""
    root = parse_untrusted(data, schema=report_schema(), max_bytes=16 * 1024 * 1024, what=what).getroot()
    reverse = {xml: name for name, xml in _XML_NAMES.items()}

    def line(element: etree._Element, kind: type, names: tuple[str, ...]) -> object:
        values: dict[str, object] = {name: "" for name in names}
        for child in element:
            name = reverse.get(etree.QName(child).localname, etree.QName(child).localname)
            values[name] = child.text or ""
        return kind(**{name: value if name.endswith("_code") or name.endswith("_name") else int(str(value) or 0)
                       for name, value in values.items()})

    return MonthlyReport(
        root.get("node", ""), root.get("department", ""), root.get("month", ""),
        dt.datetime.fromisoformat(root.get("generated", "")),
        tuple(line(e, ResourceLine, RESOURCE_FIELDS) for e in root.findall(f"{_NS}resource")),  # type: ignore[misc]
        tuple(line(e, DepartmentLine, DEPARTMENT_FIELDS) for e in root.findall(f"{_NS}department")))  # type: ignore[misc]


def files(report: MonthlyReport) -> dict[str, bytes]:
    """The report's files by name: resources CSV, departments CSV, XML."""
    resources, departments, xml = file_names(report)
    return {
        resources: _csv(RESOURCE_COLUMNS, [[getattr(line, n) for n in RESOURCE_FIELDS] for line in report.resources]),
        departments: _csv(DEPARTMENT_COLUMNS, [[getattr(line, n) for n in DEPARTMENT_FIELDS]
                                               for line in report.departments]),
        xml: to_xml(report),
    }
