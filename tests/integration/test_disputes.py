"""争议协调 over the real databases and over gRPC: a refused requester contests with its duty basis, the
provider agrees or maintains its refusal, the coordinator grants with conditions or refuses finally; only a
provider's refusal is contested and only once; every step is audited and shown in the demand list."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc
from lxml import etree

from catalog.disputes import DisputeState
from catalog.errors import IllegalTransition, InvalidField
from catalog.lists import Deadlines, DemandRequest, DemandState
from catalog.model import OpenType, ShareType
from node import bootstrap
from node.bootstrap import load_sample
from node.files.holidays import load_calendar
from node.files.lists import lists_schema
from node.services.catalog import CatalogApplication
from node.services.disputes import DisputesApplication
from node.services.lists import ListsApplication, export_list
from node.storage.audit_repository import AuditFilter
from node.storage.database import make_engine, migrate
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.identity import Principal
from security.policy import PermissionDenied, Policy
from tests.conftest import OTHER_PROVIDER, PROVIDER, FixedClock, resource
from tests.integration.grpc_node import RunningNode, make_config

NODE_DEPT = "11100000000013542N"
CONDITIONAL = "311140001/000101"
REFUSED = "311140001/000103"
SYSTEM = Principal.system("t")
CONSUMER = Principal("wang@hohhot", OTHER_PROVIDER, frozenset({"consumer"}))
REVIEWER = Principal("li@mca", PROVIDER, frozenset({"reviewer"}))
COORDINATOR = Principal("chief@node", NODE_DEPT, frozenset({"coordinator"}))
MONDAY = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def apps(database_url: str) -> Iterator[tuple[ListsApplication, DisputesApplication, FixedClock]]:
    migrate(database_url)
    engine = make_engine(database_url)
    uow = SqlUnitOfWorkFactory(engine)
    clock = FixedClock(MONDAY)
    policy = Policy(node_department=NODE_DEPT)
    catalog = CatalogApplication(uow, clock, policy)
    lists = ListsApplication(uow, clock, policy, Deadlines(load_calendar(None)))
    policy.grants = lists
    catalog.create(SYSTEM, resource(CONDITIONAL))
    catalog.publish(SYSTEM, CONDITIONAL)
    catalog.create(SYSTEM, resource(REFUSED, share_type=ShareType.NOT_SHARED, open_type=OpenType.NOT_OPEN,
                                    share_condition="涉及家庭经济状况，不予共享"))
    catalog.publish(SYSTEM, REFUSED)
    yield lists, DisputesApplication(lists), clock
    engine.dispose()


def refused(lists: ListsApplication) -> str:
    demand = lists.file_demand(CONSUMER, DemandRequest(OTHER_PROVIDER, CONDITIONAL, purpose="医疗救助", legal_basis="办法",
                                                       contact="王芳"))
    return lists.decide(REVIEWER, demand.id, False, "数据涉及隐私").id


def test_the_provider_maintains_and_the_coordinator_grants_with_conditions(apps):
    lists, disputes, clock = apps
    demand_id = refused(lists)
    with pytest.raises(InvalidField, match="duty_basis"):
        disputes.file(CONSUMER, demand_id, "  ")
    with pytest.raises(PermissionDenied):
        disputes.file(REVIEWER, demand_id, "《社会救助暂行办法》第十一条")
    dispute, demand = disputes.file(CONSUMER, demand_id, "《社会救助暂行办法》第十一条：核对医疗救助对象")
    assert dispute.state is DisputeState.AWAITING_PROVIDER and demand.state is DemandState.DISPUTED
    assert dispute.provider_deadline == dt.datetime(2026, 3, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with pytest.raises(IllegalTransition, match="contested already"):
        disputes.file(CONSUMER, demand_id, "again")
    with pytest.raises(InvalidField, match="reasons"):
        disputes.answer(REVIEWER, dispute.id, False, "")
    dispute, demand = disputes.answer(REVIEWER, dispute.id, False, "仍涉及隐私")
    assert dispute.state is DisputeState.AWAITING_COORDINATOR and demand.state is DemandState.DISPUTED
    with pytest.raises(PermissionDenied, match="coordinator role"):
        disputes.decide(REVIEWER, dispute.id, True)
    clock.advance(days=1)
    dispute, demand = disputes.decide(COORDINATOR, dispute.id, True, "履职所需", "仅用于医疗救助对象核对，不得转用")
    assert dispute.state is DisputeState.GRANTED and demand.state is DemandState.APPROVED and demand.grant_id
    assert dispute.grant_id == demand.grant_id and "不得转用" in demand.reason
    assert lists.grant_decision(OTHER_PROVIDER, CONDITIONAL).allowed
    content, _ = export_list(lists, COORDINATOR, "demands", "csv")
    [row] = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert row["争议编号"] == dispute.id and row["争议状态"] == "协调决定共享" and "不得转用" in row["争议处理意见"]
    xml, _ = export_list(lists, COORDINATOR, "demands", "xml")
    root = etree.fromstring(xml)
    lists_schema().assertValid(root)
    assert root.findtext("{urn:exnode:lists:v1}demand/{urn:exnode:lists:v1}dispute/{urn:exnode:lists:v1}state") \
        == "GRANTED"


def test_the_provider_agrees_or_the_coordinator_refuses_finally(apps):
    lists, disputes, clock = apps
    agreed, demand = disputes.answer(REVIEWER, disputes.file(CONSUMER, refused(lists), "履职需要")[0].id, True, "")
    assert agreed.state is DisputeState.SETTLED and demand.state is DemandState.APPROVED and demand.grant_id
    second = disputes.file(CONSUMER, refused(lists), "履职需要")[0]
    second = disputes.answer(REVIEWER, second.id, False, "理由同前")[0]
    with pytest.raises(InvalidField, match="reasons"):
        disputes.decide(COORDINATOR, second.id, False, "")
    final, demand = disputes.decide(COORDINATOR, second.id, False, "用途可通过核验满足，无需共享原始数据")
    assert final.state is DisputeState.REFUSED and demand.state is DemandState.REJECTED and not demand.grant_id
    assert "最终不予共享" in demand.reason
    with pytest.raises(IllegalTransition, match="contested already"):
        disputes.file(CONSUMER, demand.id, "再次")


def test_only_a_providers_refusal_is_contested_and_an_unanswered_dispute_escalates(apps):
    lists, disputes, clock = apps
    by_rule = lists.file_demand(CONSUMER, DemandRequest(OTHER_PROVIDER, REFUSED, purpose="p", legal_basis="b",
                                                        contact="c"))
    with pytest.raises(IllegalTransition, match="不予共享 is not negotiable"):
        disputes.file(CONSUMER, by_rule.id, "履职需要")
    dispute = disputes.file(CONSUMER, refused(lists), "履职需要")[0]
    assert disputes.escalate_overdue() == []
    clock.now = dispute.provider_deadline
    [escalated] = disputes.escalate_overdue()
    assert escalated.state is DisputeState.AWAITING_COORDINATOR and escalated.escalated_at == clock.now
    with pytest.raises(IllegalTransition, match="AWAITING_COORDINATOR"):
        disputes.answer(REVIEWER, dispute.id, True, "")
    assert [d.id for d in disputes.list(COORDINATOR, state=DisputeState.AWAITING_COORDINATOR).rows] == [dispute.id]


# -- over gRPC ----------------------------------------------------------------------------------------------

LOW_INCOME = "311140001/000001"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningNode]:
    config = make_config(tmp_path / "node")
    config = replace(config, node=replace(config.node, department_code=NODE_DEPT))
    node = RunningNode(config, clock=FixedClock(MONDAY))
    load_sample(node.node)
    yield node
    node.close()


def test_over_grpc_deciding_a_dispute_needs_the_coordinator_and_every_step_is_audited(running):
    def as_(dept: str, role: str) -> lists_pb2_grpc.ListsServiceStub:
        return lists_pb2_grpc.ListsServiceStub(running.channel_as(dept, (role,), f"{role}@{dept[-4:]}"))

    consumer, reviewer = as_(OTHER_PROVIDER, "consumer"), as_(PROVIDER, "reviewer")
    coordinator = as_(NODE_DEPT, "coordinator")
    filed = consumer.FileDemand(pb.FileDemandRequest(demand=pb.Demand(
        resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")))
    reviewer.DecideDemand(pb.DecideDemandRequest(id=filed.id, approve=False, reason="涉及隐私"))
    with pytest.raises(grpc.RpcError) as no_basis:
        consumer.FileDispute(pb.FileDisputeRequest(demand_id=filed.id))
    assert no_basis.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "duty_basis" in no_basis.value.details()
    opened = consumer.FileDispute(pb.FileDisputeRequest(demand_id=filed.id, duty_basis="低保资格复核为法定职责"))
    assert opened.dispute.state == pb.AWAITING_PROVIDER and opened.demand.state == pb.DISPUTED
    maintained = reviewer.AnswerDispute(pb.AnswerDisputeRequest(id=opened.dispute.id, reason="仍涉及隐私"))
    assert maintained.dispute.state == pb.AWAITING_COORDINATOR
    for stub in (reviewer, consumer, as_(PROVIDER, "coordinator")):
        with pytest.raises(grpc.RpcError) as denied:
            stub.DecideDispute(pb.DecideDisputeRequest(id=opened.dispute.id, grant=True))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    decided = coordinator.DecideDispute(pb.DecideDisputeRequest(id=opened.dispute.id, grant=True,
                                                                conditions="仅限低保复核", items=["姓名"]))
    assert decided.dispute.state == pb.GRANTED and decided.demand.state == pb.APPROVED and decided.dispute.grant_id
    [grant] = consumer.ListGrants(pb.ListGrantsRequest(resource_code=LOW_INCOME)).grants
    assert list(grant.items) == ["姓名"]
    listed = consumer.ListDisputes(pb.ListDisputesRequest()).disputes
    assert [d.id for d in listed] == [opened.dispute.id]
    entries = running.node.audit.query(AuditFilter(target=f"dispute:{opened.dispute.id}")).entries
    results = sorted((e.record.action.rsplit("/", 1)[-1], e.record.result) for e in entries)
    assert ("AnswerDispute", "OK") in results and ("DecideDispute", "OK") in results
    assert sum(1 for action, result in results if action == "DecideDispute" and result != "OK") == 3
    assert bootstrap.run_housekeeping(running.node)["disputes_escalated"] == []
