"""ListsService over real gRPC on a node with the sample catalog: each share attribute end to end,
statuses that name the state or field, an audit entry for every refusal (and nothing changed), matching
a Chinese description, and the list files."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import catalog_pb2, catalog_pb2_grpc, lists_pb2_grpc
from exnode.v1 import lists_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from node.bootstrap import load_sample
from node.files.lists import NAMESPACE, SCHEMA_PATH
from node.storage.audit_repository import AuditFilter
from security.audit import AuditEntry
from security.xml import load_schema, parse_untrusted
from tests.conftest import OTHER_PROVIDER, PROVIDER, FixedClock
from tests.integration.grpc_node import RunningNode, make_config

ELDERLY = "11100000MB1953402E"  # 民政部养老服务司: provides 养老机构基本信息 (无条件共享)
STRANGER = "11100000MB0173295A"  # a department neither asking nor providing below
LOW_INCOME = "311140001/000001"  # 城乡最低生活保障对象信息, 有条件共享, PROVIDER
CHECK_RESULTS = "311140001/000005"  # 社会救助家庭经济状况核对结果信息, 不予共享, PROVIDER
TEMPORARY_RELIEF = "311140001/000004"  # 临时救助信息, 有条件共享, PROVIDER
ELDERLY_HOMES = "311140002/000001"  # 养老机构基本信息, 无条件共享, ELDERLY
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC))  # 09:00 in Beijing


@pytest.fixture
def running(tmp_path: Path, clock: FixedClock) -> Iterator[RunningNode]:
    node = RunningNode(make_config(tmp_path / "node"), clock=clock)
    assert load_sample(node.node) == 58
    yield node
    node.close()


def stub(running: RunningNode, dept: str, *roles: str, subject: str = "tester") -> lists_pb2_grpc.ListsServiceStub:
    return lists_pb2_grpc.ListsServiceStub(running.channel_as(dept, roles, subject))


@pytest.fixture
def consumer(running: RunningNode) -> lists_pb2_grpc.ListsServiceStub:
    return stub(running, OTHER_PROVIDER, "consumer", subject="wang@hohhot")


@pytest.fixture
def reviewer(running: RunningNode) -> lists_pb2_grpc.ListsServiceStub:
    return stub(running, PROVIDER, "reviewer", subject="li@mca")


@pytest.fixture
def operator(running: RunningNode) -> lists_pb2_grpc.ListsServiceStub:
    return stub(running, STRANGER, "operator", subject="ops")


def demand(code: str, **changes: object) -> pb.FileDemandRequest:
    fields: dict[str, object] = dict(
        resource_code=code, purpose="医疗救助对象身份核验", legal_basis="《社会救助暂行办法》第二十九条",
        frequency="MONTHLY", contact="王五 0471-6612345")
    fields.update(changes)
    return pb.FileDemandRequest(demand=pb.Demand(**fields))


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    bad = error_details_pb2.BadRequest()
    assert status is not None and status.details and status.details[0].Unpack(bad)
    return [v.field for v in bad.field_violations]


def audited(running: RunningNode, result: str, method: str) -> list[AuditEntry]:
    entries = running.node.audit.query(AuditFilter(result=result), page_size=500).entries
    return [e for e in entries if e.record.action == f"ListsService/{method}"]


def snapshot(running: RunningNode, ids: list[str]) -> tuple:
    """What a refused call must not change: the demands and every grant, as the operator sees them."""
    ops = stub(running, STRANGER, "operator", subject="snapshot")
    demands = tuple(ops.GetDemand(pb.GetDemandRequest(id=i)).SerializeToString(deterministic=True) for i in ids)
    grants = ops.ListGrants(pb.ListGrantsRequest()).SerializeToString(deterministic=True)
    count = len(ops.ListDemands(pb.ListDemandsRequest()).demands)
    return demands, grants, count


# -- each share attribute end to end --------------------------------------------------------------------

def test_unconditional_is_approved_on_filing_and_the_grant_revoked_by_the_provider(running, consumer):
    filed = consumer.FileDemand(demand(ELDERLY_HOMES, items=["机构名称", "机构地址"]))
    assert filed.state == pb.APPROVED and filed.grant_id and filed.requester_code == OTHER_PROVIDER
    assert filed.provider_code == ELDERLY and filed.resource_name == "养老机构基本信息"
    assert filed.HasField("review_deadline") and filed.decided_by == "rule:无条件共享"
    (grant,) = consumer.ListGrants(pb.ListGrantsRequest()).grants
    assert grant.id == filed.grant_id and grant.state == "ACTIVE" and not grant.revoked
    assert list(grant.items) == ["机构名称", "机构地址"] and dict(grant.masking) == {"机构地址": "keep:6,0"}
    assert grant.expires_at.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2027, 3, 2, 1, 0, tzinfo=dt.UTC)

    provider = stub(running, ELDERLY, "reviewer", subject="zhang@elderly")
    revoked = provider.RevokeGrant(pb.RevokeGrantRequest(id=grant.id, reason="用途超出授权范围"))
    assert revoked.state == "REVOKED" and revoked.revoked and revoked.revoked_reason == "用途超出授权范围"
    assert [g.state for g in consumer.ListGrants(pb.ListGrantsRequest()).grants] == ["REVOKED"]
    again = rpc_error(provider.RevokeGrant, pb.RevokeGrantRequest(id=grant.id, reason="again"))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "REVOKED" in again.details()
    assert "revoked" in running.node.lists.grant_decision(OTHER_PROVIDER, ELDERLY_HOMES).reason


def test_conditional_is_reviewed_approved_listed_and_revoked(running, consumer, reviewer):
    filed = consumer.FileDemand(demand(LOW_INCOME, items=["姓名", "公民身份号码", "保障类别"]))
    assert filed.state == pb.UNDER_REVIEW and not filed.grant_id and filed.provider_code == PROVIDER
    assert consumer.ListGrants(pb.ListGrantsRequest()).grants == []
    pending = reviewer.ListDemands(pb.ListDemandsRequest(state=pb.UNDER_REVIEW)).demands
    assert [d.id for d in pending] == [filed.id]

    decided = reviewer.DecideDemand(pb.DecideDemandRequest(id=filed.id, approve=True, reason="同意",
                                                           items=["姓名", "公民身份号码"], default_masking=True))
    assert decided.state == pb.APPROVED and decided.grant_id and decided.decided_by == "li@mca"
    assert decided.version == filed.version + 1
    (grant,) = consumer.ListGrants(pb.ListGrantsRequest(resource_code=LOW_INCOME)).grants
    assert grant.id == decided.grant_id and grant.demand_id == filed.id and grant.state == "ACTIVE"
    assert list(grant.items) == ["姓名", "公民身份号码"] and dict(grant.masking) == {"公民身份号码": "keep:6,4"}
    assert reviewer.ListGrants(pb.ListGrantsRequest()).grants[0].id == grant.id

    revoked = reviewer.RevokeGrant(pb.RevokeGrantRequest(id=grant.id, reason="核对工作结束"))
    assert revoked.state == "REVOKED"
    assert consumer.GetDemand(pb.GetDemandRequest(id=filed.id)).state == pb.APPROVED


def test_conditional_approval_with_explicit_masking_and_expiry(consumer, reviewer, clock):
    filed = consumer.FileDemand(demand(LOW_INCOME, items=["姓名", "公民身份号码"]))
    request = pb.DecideDemandRequest(id=filed.id, approve=True, masking={"公民身份号码": "hash", "姓名": "hide"})
    request.expires_at.FromDatetime(dt.datetime(2026, 6, 30, 16, 0, tzinfo=dt.UTC))
    reviewer.DecideDemand(request)
    (grant,) = consumer.ListGrants(pb.ListGrantsRequest()).grants
    assert dict(grant.masking) == {"公民身份号码": "hash", "姓名": "hide"}
    assert grant.expires_at.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 6, 30, 16, 0, tzinfo=dt.UTC)


def test_not_shared_is_rejected_citing_the_rule_and_stays_rejected(running, consumer, reviewer):
    filed = consumer.FileDemand(demand(CHECK_RESULTS))
    assert filed.state == pb.REJECTED and filed.reason.startswith("不予共享") and not filed.grant_id
    assert filed.decided_by == "rule:不予共享" and len(filed.items) > 0
    error = rpc_error(reviewer.DecideDemand, pb.DecideDemandRequest(id=filed.id, approve=True))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "REJECTED" in error.details()
    assert consumer.ListGrants(pb.ListGrantsRequest()).grants == []
    assert not running.node.lists.grant_decision(OTHER_PROVIDER, CHECK_RESULTS).allowed


def test_a_described_demand_is_matched_then_linked(consumer):
    filed = consumer.FileDemand(demand("", description="需要城乡低保对象的身份信息，用于医疗救助对象身份核对",
                                       items=["姓名"]))
    assert filed.state == pb.SUBMITTED and filed.resource_code == "" and filed.provider_code == ""
    found = consumer.SuggestResources(pb.SuggestResourcesRequest(description=filed.description,
                                                                 items=["身份证号", "姓名"], limit=3))
    assert len(found.suggestions) == 3
    best = found.suggestions[0]
    assert (best.resource_code, best.name) == (LOW_INCOME, "城乡最低生活保障对象信息")
    assert best.provider_name == "民政部社会救助司" and best.share_type == "CONDITIONAL"
    assert list(best.matched_items) == ["公民身份号码", "姓名"] and best.score > found.suggestions[1].score
    linked = consumer.LinkDemand(pb.LinkDemandRequest(id=filed.id, resource_code=best.resource_code))
    assert linked.state == pb.UNDER_REVIEW and linked.resource_code == LOW_INCOME
    assert linked.provider_code == PROVIDER and list(linked.items) == ["姓名"]
    again = rpc_error(consumer.LinkDemand, pb.LinkDemandRequest(id=filed.id, resource_code=ELDERLY_HOMES))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "UNDER_REVIEW" in again.details()


def test_suggest_needs_something_to_match(consumer):
    error = rpc_error(consumer.SuggestResources, pb.SuggestResourcesRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "description" in error.details()
    found = consumer.SuggestResources(pb.SuggestResourcesRequest(description="婚姻登记"))
    assert found.suggestions and all("婚" in s.name or "登记" in s.name for s in found.suggestions[:3])


# -- refusals: a status naming the state or field, an audit entry, nothing changed ------------------------

def test_an_illegal_transition_is_failed_precondition_naming_the_current_state(running, consumer, reviewer):
    filed = consumer.FileDemand(demand(LOW_INCOME))
    consumer.WithdrawDemand(pb.WithdrawDemandRequest(id=filed.id, reason="需求已变更"))
    before = snapshot(running, [filed.id])
    error = rpc_error(reviewer.DecideDemand, pb.DecideDemandRequest(id=filed.id, approve=True))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "WITHDRAWN" in error.details() and filed.id in error.details()
    again = rpc_error(consumer.WithdrawDemand, pb.WithdrawDemandRequest(id=filed.id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "WITHDRAWN" in again.details()
    assert snapshot(running, [filed.id]) == before
    (entry,) = audited(running, "FAILED_PRECONDITION", "DecideDemand")
    assert entry.record.target == f"demand:{filed.id}" and "WITHDRAWN" in entry.record.detail
    assert entry.record.subject == "li@mca" and entry.record.department_code == PROVIDER


def test_a_rejection_without_a_reason_is_invalid_argument_naming_reason(running, consumer, reviewer):
    filed = consumer.FileDemand(demand(LOW_INCOME))
    before = snapshot(running, [filed.id])
    error = rpc_error(reviewer.DecideDemand, pb.DecideDemandRequest(id=filed.id, approve=False))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in error.details()
    assert violations(error) == ["reason"]
    assert snapshot(running, [filed.id]) == before
    (entry,) = audited(running, "INVALID_ARGUMENT", "DecideDemand")
    assert entry.record.target == f"demand:{filed.id}"
    rejected = reviewer.DecideDemand(pb.DecideDemandRequest(id=filed.id, approve=False, reason="材料不全"))
    assert rejected.state == pb.REJECTED and rejected.reason == "材料不全"


def test_an_unknown_resource_is_not_found(running, consumer):
    before = snapshot(running, [])
    error = rpc_error(consumer.FileDemand, demand("311140001/999999"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "311140001/999999" in error.details()
    assert snapshot(running, []) == before
    (entry,) = audited(running, "NOT_FOUND", "FileDemand")
    assert entry.record.target == "resource:311140001/999999"
    missing = rpc_error(consumer.GetDemand, pb.GetDemandRequest(id="XQ-20260302-FFFFFFFF"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_a_retired_resource_is_invalid_argument_naming_resource_code(running, consumer):
    catalog = catalog_pb2_grpc.CatalogServiceStub(running.channel)  # catalog_admin of PROVIDER
    retired = catalog.RetireResource(catalog_pb2.RetireResourceRequest(code=TEMPORARY_RELIEF))
    assert retired.status == catalog_pb2.RETIRED
    before = snapshot(running, [])
    error = rpc_error(consumer.FileDemand, demand(TEMPORARY_RELIEF))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "RETIRED" in error.details()
    assert violations(error) == ["resource_code"]
    assert snapshot(running, []) == before
    (entry,) = audited(running, "INVALID_ARGUMENT", "FileDemand")
    assert entry.record.target == f"resource:{TEMPORARY_RELIEF}" and "resource_code" in entry.record.detail


def test_items_not_in_the_resource_are_named(consumer):
    error = rpc_error(consumer.FileDemand, demand(LOW_INCOME, items=["姓名", "婚姻状况"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and violations(error) == ["items[1]"]
    error = rpc_error(consumer.FileDemand, demand(LOW_INCOME, frequency="SOMETIMES"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "demand.frequency" in error.details()


def test_a_reviewer_of_another_department_is_permission_denied(running, consumer):
    filed = consumer.FileDemand(demand(LOW_INCOME))
    before = snapshot(running, [filed.id])
    stranger = stub(running, ELDERLY, "reviewer", subject="zhang@elderly")
    error = rpc_error(stranger.DecideDemand, pb.DecideDemandRequest(id=filed.id, approve=True))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert PROVIDER in error.details() and ELDERLY in error.details()
    assert snapshot(running, [filed.id]) == before
    (entry,) = audited(running, "PERMISSION_DENIED", "DecideDemand")
    assert entry.record.target == f"demand:{filed.id}" and entry.record.department_code == ELDERLY
    assert entry.record.subject == "zhang@elderly" and PROVIDER in entry.record.detail
    # nor may another department's consumer withdraw it, or read it
    other = stub(running, ELDERLY, "consumer", subject="chen@elderly")
    for call, request in ((other.WithdrawDemand, pb.WithdrawDemandRequest(id=filed.id)),
                          (other.GetDemand, pb.GetDemandRequest(id=filed.id))):
        assert rpc_error(call, request).code() == grpc.StatusCode.PERMISSION_DENIED
    assert snapshot(running, [filed.id]) == before
    assert len(audited(running, "PERMISSION_DENIED", "WithdrawDemand")) == 1
    assert other.ListDemands(pb.ListDemandsRequest()).demands == []


def test_revoking_needs_the_providers_reviewer(running, consumer):
    filed = consumer.FileDemand(demand(ELDERLY_HOMES))
    before = snapshot(running, [filed.id])
    for who in (consumer, stub(running, PROVIDER, "reviewer")):
        error = rpc_error(who.RevokeGrant, pb.RevokeGrantRequest(id=filed.grant_id, reason="x"))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and ELDERLY in error.details()
    assert snapshot(running, [filed.id]) == before
    assert len(audited(running, "PERMISSION_DENIED", "RevokeGrant")) == 2


# -- the responsibility list ----------------------------------------------------------------------------

def test_the_responsibility_list_follows_the_node_clock(running, consumer, clock):
    lines = consumer.ListObligations(pb.ListObligationsRequest()).obligations
    assert len(lines) == 58
    assert {pb.Compliance.Name(o.compliance) for o in lines} == {"NOT_YET_DUE", "UNSCHEDULED"}
    unscheduled = [o for o in lines if o.compliance == pb.UNSCHEDULED]
    assert len(unscheduled) == 2 and all(o.grace_days == -1 and o.update_cycle == "OTHER" for o in unscheduled)
    ours = consumer.ListObligations(pb.ListObligationsRequest(department_code=PROVIDER)).obligations
    assert {o.resource_code for o in ours} >= {LOW_INCOME, CHECK_RESULTS} and len(ours) == 6
    assert all(o.department_code == PROVIDER and o.provider_name == "民政部社会救助司" for o in ours)

    clock.advance(days=40)  # 04-11 in Beijing: March is due for the monthly resources (04-06)
    low_income = next(o for o in consumer.ListObligations(pb.ListObligationsRequest(department_code=PROVIDER))
                      .obligations if o.resource_code == LOW_INCOME)
    assert low_income.compliance == pb.NEVER_DELIVERED and low_income.overdue_seconds > 0
    assert low_income.due_rule == "每月，周期结束后 5 日内报送" and low_income.missed_periods == 1
    running.node.lists.record_delivery(PROVIDER, LOW_INCOME, "", "batch-1", 1000)
    delivered = consumer.ListObligations(pb.ListObligationsRequest(department_code=PROVIDER,
                                                                   compliance=pb.ON_TIME)).obligations
    assert [o.resource_code for o in delivered] == [LOW_INCOME]
    assert delivered[0].deliveries == 1 and delivered[0].last_delivery.ToDatetime(tzinfo=dt.UTC) == clock.now

    admin = stub(running, PROVIDER, "catalog_admin")
    added = admin.AddObligation(pb.AddObligationRequest(department_code=PROVIDER, resource_code=LOW_INCOME,
                                                        grace_days=10, contact="张三 010-58123114"))
    assert added.explicit and added.grace_days == 10 and added.contact == "张三 010-58123114"
    denied = rpc_error(stub(running, ELDERLY, "catalog_admin").AddObligation,
                       pb.AddObligationRequest(department_code=PROVIDER, resource_code=LOW_INCOME, grace_days=-1))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


# -- the list files -------------------------------------------------------------------------------------

def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_export_csv_opens_in_excel_with_the_chinese_intact(consumer, operator):
    consumer.FileDemand(demand(LOW_INCOME))
    consumer.FileDemand(demand(CHECK_RESULTS))
    whole = operator.ExportList(pb.ExportListRequest(list="responsibilities", format="csv"))
    assert whole.content.startswith(BOM) and whole.filename.endswith(".csv") and "责任清单" in whole.filename
    rows = read_csv(whole.content)
    assert len(rows) == 58
    names = {row["资源名称"] for row in rows}
    assert {"城乡最低生活保障对象信息", "养老机构基本信息", "结婚登记信息"} <= names
    ours = consumer.ExportList(pb.ExportListRequest(list="responsibilities", format="csv",
                                                    department_code=PROVIDER))
    assert ours.content.startswith(BOM) and PROVIDER in ours.filename
    assert {row["提供部门代码"] for row in read_csv(ours.content)} == {PROVIDER}
    demands = consumer.ExportList(pb.ExportListRequest(list="demands", format="csv",
                                                       department_code=OTHER_PROVIDER))
    rows = read_csv(demands.content)
    assert demands.content.startswith(BOM) and len(rows) == 2
    assert {row["资源名称"] for row in rows} == {"城乡最低生活保障对象信息", "社会救助家庭经济状况核对结果信息"}
    assert "城乡最低生活保障对象信息" in demands.content.decode("utf-8-sig")


def test_export_xml_is_valid_against_the_schema(consumer, operator):
    consumer.FileDemand(demand(LOW_INCOME))
    consumer.FileDemand(demand(ELDERLY_HOMES))
    schema = load_schema(SCHEMA_PATH)
    ns = {"l": NAMESPACE}
    whole = operator.ExportList(pb.ExportListRequest(list="responsibilities", format="xml"))
    tree = parse_untrusted(whole.content, schema=schema, max_bytes=16 * 1024 * 1024, what="list file")
    assert tree.getroot().tag == f"{{{NAMESPACE}}}responsibilityList"
    assert len(tree.getroot().findall("l:obligation", ns)) == 58
    assert "城乡最低生活保障对象信息" in whole.content.decode("utf-8") and whole.filename.endswith(".xml")
    demands = consumer.ExportList(pb.ExportListRequest(list="demands", format="xml",
                                                       department_code=OTHER_PROVIDER))
    tree = parse_untrusted(demands.content, schema=schema, max_bytes=16 * 1024 * 1024, what="list file")
    assert tree.getroot().tag == f"{{{NAMESPACE}}}demandList"
    assert len(tree.getroot().findall("l:demand", ns)) == 2


def test_whole_node_export_is_for_the_nodes_department_or_an_operator(running, consumer):
    before = snapshot(running, [])
    for kind in ("responsibilities", "demands"):
        error = rpc_error(consumer.ExportList, pb.ExportListRequest(list=kind, format="csv"))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert OTHER_PROVIDER in error.details() and "operator" in error.details()
    entries = audited(running, "PERMISSION_DENIED", "ExportList")
    assert sorted(e.record.target for e in entries) == ["demands:node", "responsibilities:node"]
    assert snapshot(running, []) == before
    # another department's demand list is not anybody's to export
    error = rpc_error(consumer.ExportList, pb.ExportListRequest(list="demands", format="csv",
                                                                department_code=PROVIDER))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = rpc_error(consumer.ExportList, pb.ExportListRequest(list="grants", format="csv",
                                                              department_code=OTHER_PROVIDER))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "list" in bad.details()
