"""The responsibility list (责任清单) and the demand list (需求清单) as files for reporting upward.

CSV is for people: departments open it in Excel, so it is UTF-8 with a BOM (without one Excel reads the
Chinese as the local code page), has CRLF line endings and Chinese column names, shows enumerations by
their Chinese labels and times as Beijing wall-clock time, and neutralises cells that Excel would run as
formulas. XML is for machines: English element names, enumeration tokens, ISO 8601 times with +08:00,
valid against ``schemas/lists.xsd`` (namespace ``urn:exnode:lists:v1``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from lxml import etree

from catalog.disputes import Dispute, DisputeState
from catalog.lists import BEIJING, Compliance, Demand, DemandState, ObligationLine
from security.xml import load_schema

NAMESPACE = "urn:exnode:lists:v1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "lists.xsd"
FORMATS = ("csv", "xml")
_NS = f"{{{NAMESPACE}}}"

COMPLIANCE_LABELS: dict[Compliance, str] = {
    Compliance.ON_TIME: "按时",
    Compliance.OVERDUE: "逾期",
    Compliance.NEVER_DELIVERED: "从未报送",
    Compliance.NOT_YET_DUE: "未到期",
    Compliance.UNSCHEDULED: "不定期",
}
DEMAND_STATE_LABELS: dict[DemandState, str] = {
    DemandState.SUBMITTED: "已提交",
    DemandState.COMPLIANCE_REVIEW: "合规审核中",
    DemandState.UNDER_REVIEW: "审核中",
    DemandState.APPROVED: "已批准",
    DemandState.REJECTED: "已驳回",
    DemandState.FULFILLED: "已销账",
    DemandState.WITHDRAWN: "已撤回",
    DemandState.EXPIRED: "已过期",
    DemandState.DISPUTED: "争议协调中",
}
SOURCE_LABELS = {False: "目录派生", True: "人工添加"}
"""An obligation derived from the published catalog, or added by an administrator."""

RESPONSIBILITY_COLUMNS = (
    "提供部门代码", "提供部门", "资源代码", "资源名称", "信息项", "共享类型", "条件/依据", "更新周期", "报送要求",
    "联系人", "来源", "履行情况", "最近报送", "下次截止", "逾期天数", "缺报期数",
)
DEMAND_COLUMNS = (
    "需求编号", "需求部门", "资源代码", "资源名称", "需求描述", "信息项", "应用场景", "使用依据", "提供部门", "频率",
    "联系人", "状态", "理由", "审核人", "授权编号", "提交时间", "审核期限", "合规审核期限", "合规审核时间",
    "答复期限", "答复时间", "时效", "升级协调时间", "争议编号", "争议状态", "履职依据", "争议处理意见",
)
DISPUTE_STATE_LABELS: dict[DisputeState, str] = {
    DisputeState.AWAITING_PROVIDER: "待提供部门答复",
    DisputeState.AWAITING_COORDINATOR: "待主管部门协调",
    DisputeState.SETTLED: "协商一致（同意共享）",
    DisputeState.GRANTED: "协调决定共享",
    DisputeState.REFUSED: "协调决定不予共享",
}
ITEM_SEPARATOR = "、"

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""OWASP (CSV Injection): Excel and LibreOffice run a cell starting with one of these as a formula."""
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all (not even escaped); demand texts are not checked for them."""


@cache
def lists_schema() -> etree.XMLSchema:
    return load_schema(SCHEMA_PATH)


def _beijing(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at}: list files need aware datetimes (stored times are UTC)")
    return at.astimezone(BEIJING)


def _wall_clock(at: dt.datetime | None) -> str:
    """Beijing time to the minute, as departments read it; empty when there is no time."""
    return "" if at is None else f"{_beijing(at):%Y-%m-%d %H:%M}"


def _iso(at: dt.datetime) -> str:
    return _beijing(at).isoformat(timespec="seconds")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown list file format {fmt!r} (csv or xml)")


def overdue_days(line: ObligationLine) -> int | None:
    """Days late, counted as the departments count them; None when the line is not late.

    Due times fall at Beijing midnight (the day after the last day allowed), so the n-th day that has
    begun since the due time is the n-th calendar day late: rounding up gives "逾期 1 天" on the first
    day after the deadline, where rounding down would show an overdue line as 0 days late.
    """
    status = line.status
    if status.compliance not in (Compliance.OVERDUE, Compliance.NEVER_DELIVERED):
        return None
    return max(1, math.ceil(status.overdue_by / dt.timedelta(days=1)))


# -- CSV -------------------------------------------------------------------------------------------------

def neutralise(cell: str) -> str:
    """Prefix an apostrophe to a cell Excel would evaluate (=, +, -, @, tab, CR first): the file comes
    from many departments' free text and is opened by others, so a cell must never run as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)  # excel dialect: CRLF line ends, quotes where needed
    writer.writerow(header)
    for row in rows:
        writer.writerow([neutralise("" if cell is None else str(cell)) for cell in row])
    return out.getvalue().encode("utf-8-sig")


def _responsibility_row(line: ObligationLine) -> list[object]:
    o, s = line.obligation, line.status
    return [
        o.department_code, o.provider_name, o.resource_code, o.resource_name, ITEM_SEPARATOR.join(o.items),
        o.share_type.label if o.share_type else "", o.share_condition, o.update_cycle.label, o.due_rule, o.contact,
        SOURCE_LABELS[o.explicit], COMPLIANCE_LABELS[s.compliance], _wall_clock(s.last_delivery),
        _wall_clock(s.next_due), overdue_days(line), s.missed_periods,
    ]


def _dispute_opinion(dispute: Dispute) -> str:
    parts = [f"提供部门：{dispute.provider_answer}" if dispute.provider_by else "",
             f"主管部门：{dispute.decision_reason}" if dispute.decided_by and dispute.decision_reason else "",
             f"条件：{dispute.conditions}" if dispute.conditions else ""]
    return "；".join(p for p in parts if p)


def _demand_row(d: Demand, dispute: Dispute | None = None) -> list[object]:
    r = d.request
    return [
        d.id, r.requester_code, r.resource_code, d.resource_name, r.description, ITEM_SEPARATOR.join(r.items),
        r.purpose, r.legal_basis, d.provider_code, r.frequency.label if r.frequency else "", r.contact,
        DEMAND_STATE_LABELS[d.state], d.reason, d.decided_by, d.grant_id, _wall_clock(d.created_at),
        _wall_clock(d.review_deadline), _wall_clock(d.compliance_deadline), _wall_clock(d.compliance_at),
        _wall_clock(d.answer_deadline), _wall_clock(d.answered_at), timeliness_label(d), _wall_clock(d.escalated_at),
        dispute.id if dispute else "", DISPUTE_STATE_LABELS[dispute.state] if dispute else "",
        dispute.duty_basis if dispute else "", _dispute_opinion(dispute) if dispute else "",
    ]


def timeliness_label(d: Demand) -> str:
    """时效 as the list shows it: 超期 for a stage answered late (the answer stands), 按时 when every stage
    answered so far kept its deadline, empty while nothing was answered."""
    if d.compliance_late or d.answer_late:
        return "超期"
    if d.compliance_at is not None or d.answered_at is not None:
        return "按时"
    return ""


# -- XML -------------------------------------------------------------------------------------------------

def _root(name: str, now: dt.datetime, department_code: str) -> etree._Element:
    return etree.Element(f"{_NS}{name}", nsmap={None: NAMESPACE}, version="1", generated=_iso(now),
                         scope=department_code or "node")


def _add(parent: etree._Element, name: str, value: object, *, required: bool = False) -> None:
    """A child element; an empty optional value is left out (the schema marks those minOccurs=0)."""
    if value is None or value == "":
        if not required:
            return
        value = ""
    if isinstance(value, dt.datetime):
        text = _iso(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    etree.SubElement(parent, f"{_NS}{name}").text = _NOT_XML.sub("\ufffd", text)


def _add_items(parent: etree._Element, items: Sequence[str]) -> None:
    if items:
        element = etree.SubElement(parent, f"{_NS}items")
        for item in items:
            _add(element, "item", item, required=True)


def _obligation_element(parent: etree._Element, line: ObligationLine) -> None:
    o, s = line.obligation, line.status
    e = etree.SubElement(parent, f"{_NS}obligation")
    _add(e, "departmentCode", o.department_code, required=True)
    _add(e, "departmentName", o.provider_name)
    _add(e, "resourceCode", o.resource_code, required=True)
    _add(e, "resourceName", o.resource_name, required=True)
    _add_items(e, o.items)
    _add(e, "shareType", o.share_type.value if o.share_type else None)
    _add(e, "shareCondition", o.share_condition)
    _add(e, "updateCycle", o.update_cycle.value, required=True)
    _add(e, "graceDays", o.effective_grace_days)
    _add(e, "dueRule", o.due_rule, required=True)
    _add(e, "contact", o.contact)
    _add(e, "source", "EXPLICIT" if o.explicit else "CATALOG", required=True)
    _add(e, "since", o.since)
    _add(e, "compliance", s.compliance.value, required=True)
    _add(e, "lastDelivery", s.last_delivery)
    _add(e, "nextDue", s.next_due)
    _add(e, "overdueDays", overdue_days(line))
    _add(e, "missedPeriods", s.missed_periods, required=True)
    _add(e, "deliveries", s.deliveries, required=True)


def _dispute_element(parent: etree._Element, dispute: Dispute) -> None:
    e = etree.SubElement(parent, f"{_NS}dispute")
    _add(e, "id", dispute.id, required=True)
    _add(e, "state", dispute.state.value, required=True)
    _add(e, "dutyBasis", dispute.duty_basis, required=True)
    _add(e, "createdAt", dispute.created_at, required=True)
    _add(e, "providerDeadline", dispute.provider_deadline, required=True)
    _add(e, "providerAnswer", dispute.provider_answer)
    _add(e, "providerAt", dispute.provider_at)
    _add(e, "escalatedAt", dispute.escalated_at)
    _add(e, "decisionReason", dispute.decision_reason)
    _add(e, "conditions", dispute.conditions)
    _add(e, "decidedBy", dispute.decided_by)
    _add(e, "decidedAt", dispute.decided_at)


def _demand_element(parent: etree._Element, d: Demand, dispute: Dispute | None = None) -> None:
    r = d.request
    e = etree.SubElement(parent, f"{_NS}demand")
    _add(e, "id", d.id, required=True)
    _add(e, "requesterCode", r.requester_code, required=True)
    _add(e, "resourceCode", r.resource_code)
    _add(e, "resourceName", d.resource_name)
    _add(e, "description", r.description)
    _add_items(e, r.items)
    _add(e, "purpose", r.purpose, required=True)
    _add(e, "legalBasis", r.legal_basis, required=True)
    _add(e, "providerCode", d.provider_code)
    _add(e, "frequency", r.frequency.value if r.frequency else None)
    _add(e, "contact", r.contact, required=True)
    _add(e, "state", d.state.value, required=True)
    _add(e, "reason", d.reason)
    _add(e, "decidedBy", d.decided_by)
    _add(e, "grantId", d.grant_id)
    _add(e, "createdAt", d.created_at, required=True)
    _add(e, "updatedAt", d.updated_at, required=True)
    _add(e, "reviewDeadline", d.review_deadline, required=True)
    _add(e, "complianceDeadline", d.compliance_deadline)
    _add(e, "complianceAt", d.compliance_at)
    _add(e, "complianceLate", d.compliance_late if d.compliance_at else None)
    _add(e, "answerDeadline", d.answer_deadline)
    _add(e, "answeredAt", d.answered_at)
    _add(e, "answerLate", d.answer_late if d.answered_at else None)
    _add(e, "escalatedAt", d.escalated_at)
    if dispute is not None:
        _dispute_element(e, dispute)


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# -- the two lists ---------------------------------------------------------------------------------------

def responsibilities(lines: Sequence[ObligationLine], fmt: str, now: dt.datetime, department_code: str) -> bytes:
    """The responsibility list with each line's compliance at ``now``; ``department_code`` empty means the
    whole node's list (the XML ``scope``)."""
    _check_format(fmt)
    if fmt == "csv":
        return _csv(RESPONSIBILITY_COLUMNS, [_responsibility_row(line) for line in lines])
    root = _root("responsibilityList", now, department_code)
    for line in lines:
        _obligation_element(root, line)
    return _xml(root)


def demands(demands: Sequence[Demand], fmt: str, now: dt.datetime, department_code: str,
            disputes: Mapping[str, Dispute] | None = None) -> bytes:
    """The demand list, every demand until closed (销账) with its state and its dispute, if any (by demand
    id); ``department_code`` empty means the whole node's list."""
    _check_format(fmt)
    disputes = disputes or {}
    if fmt == "csv":
        return _csv(DEMAND_COLUMNS, [_demand_row(d, disputes.get(d.id)) for d in demands])
    root = _root("demandList", now, department_code)
    for demand in demands:
        _demand_element(root, demand, disputes.get(demand.id))
    return _xml(root)

