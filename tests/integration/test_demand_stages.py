"""The demand stages over the real databases: the coordinator's compliance review, the provider's answer in
working days across the 2026 Spring Festival, a late answer recorded and kept, timeliness statistics, the
lists export showing the deadlines, demands of before migration 0013 keeping theirs, and a node whose
calendar lacks the current year starting, warning once and saying so in its metrics."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from alembic import command
from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc
from lxml import etree
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from catalog.lists import BEIJING, Deadlines, DemandRequest, DemandState
from catalog.model import ShareType
from node import bootstrap
from node.bootstrap import load_sample
from node.files.holidays import load_calendar
from node.files.lists import lists_schema
from node.ops.metrics import NodeCollector
from node.services.catalog import CatalogApplication
from node.services.lists import ListsApplication, export_list
from node.storage.audit_repository import AuditFilter
from node.storage.database import alembic_config, make_engine, migrate
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.identity import Principal
from security.policy import PermissionDenied, Policy
from tests.conftest import OTHER_PROVIDER, PROVIDER, FixedClock, resource
from tests.integration.grpc_node import RunningNode, make_config

NODE_DEPT = "11100000000013542N"
CONDITIONAL = "311140001/000101"
UNCONDITIONAL = "311140001/000102"
SYSTEM = Principal.system("t")
CONSUMER = Principal("wang@hohhot", OTHER_PROVIDER, frozenset({"consumer"}))
REVIEWER = Principal("li@mca", PROVIDER, frozenset({"reviewer"}))
COORDINATOR = Principal("chief@node", NODE_DEPT, frozenset({"coordinator"}))
FOREIGN_COORDINATOR = Principal("chief@other", PROVIDER, frozenset({"coordinator"}))
FRIDAY_BEFORE_SPRING_FESTIVAL = dt.datetime(2026, 2, 13, 8, 0, tzinfo=dt.UTC)  # 16:00 in Beijing


def bj(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=BEIJING)


@pytest.fixture
def stages(database_url: str) -> Iterator[tuple[ListsApplication, FixedClock]]:
    migrate(database_url)
    engine = make_engine(database_url)
    uow = SqlUnitOfWorkFactory(engine)
    clock = FixedClock(FRIDAY_BEFORE_SPRING_FESTIVAL)
    policy = Policy(node_department=NODE_DEPT)
    catalog = CatalogApplication(uow, clock, policy)
    lists = ListsApplication(uow, clock, policy, Deadlines(load_calendar(None), compliance_review=True))
    policy.grants = lists
    for code, share in ((CONDITIONAL, ShareType.CONDITIONAL), (UNCONDITIONAL, ShareType.UNCONDITIONAL)):
        changes: dict[str, object] = {"share_type": share}
        if share is ShareType.UNCONDITIONAL:
            changes["share_condition"] = ""
        catalog.create(SYSTEM, resource(code, **changes))
        catalog.publish(SYSTEM, code)
    yield lists, clock
    engine.dispose()


def ask(code: str) -> DemandRequest:
    return DemandRequest(OTHER_PROVIDER, code, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")


def test_the_coordinator_reviews_then_the_provider_answers_in_working_days(stages):
    lists, clock = stages
    demand = lists.file_demand(CONSUMER, ask(CONDITIONAL))
    assert demand.state is DemandState.COMPLIANCE_REVIEW
    assert demand.compliance_deadline == bj(2026, 2, 25)  # Sat 14 (调休) and Tue 24: due at the end of the 24th
    with pytest.raises(PermissionDenied, match="coordinator role"):
        lists.review(REVIEWER, demand.id, True)
    with pytest.raises(PermissionDenied, match="department running the node"):
        lists.review(FOREIGN_COORDINATOR, demand.id, True)
    clock.now = bj(2026, 2, 24, 10)
    forwarded = lists.review(COORDINATOR, demand.id, True, "依据充分")
    assert forwarded.state is DemandState.UNDER_REVIEW and not forwarded.compliance_late
    # never delivered to the platform: 10 working days from Tue 24: Feb 25-28 (Sat 调休), Mar 2-6, Mar 9
    assert forwarded.answer_deadline == forwarded.review_deadline == bj(2026, 3, 10)
    clock.now = bj(2026, 3, 10, 9)
    answered = lists.decide(REVIEWER, demand.id, True)
    assert answered.state is DemandState.APPROVED and answered.answer_late and answered.grant_id
    stats = {s.stage: s for s in lists.timeliness(COORDINATOR)}
    assert (stats["COMPLIANCE_REVIEW"].on_time, stats["COMPLIANCE_REVIEW"].late) == (1, 0)
    assert (stats["UNDER_REVIEW"].on_time, stats["UNDER_REVIEW"].late) == (0, 1)


def test_an_unconditional_demand_is_granted_by_the_coordinator_and_a_failed_review_rejects(stages):
    lists, clock = stages
    unconditional = lists.file_demand(CONSUMER, ask(UNCONDITIONAL))
    assert unconditional.state is DemandState.COMPLIANCE_REVIEW and not unconditional.grant_id
    clock.now = bj(2026, 2, 26, 9)  # after the deadline (end of Feb 24): late, still granted
    granted = lists.review(COORDINATOR, unconditional.id, True)
    assert granted.state is DemandState.APPROVED and granted.grant_id and granted.compliance_late
    refused = lists.review(COORDINATOR, lists.file_demand(CONSUMER, ask(CONDITIONAL)).id, False, "使用依据与用途不符")
    assert refused.state is DemandState.REJECTED and "使用依据与用途不符" in refused.reason
    stats = {s.stage: s for s in lists.timeliness(COORDINATOR)}
    assert (stats["COMPLIANCE_REVIEW"].on_time, stats["COMPLIANCE_REVIEW"].late) == (1, 1)


def test_the_demand_list_export_shows_the_working_day_deadlines(stages):
    lists, clock = stages
    demand = lists.file_demand(CONSUMER, ask(CONDITIONAL))
    clock.now = bj(2026, 2, 24, 10)
    lists.review(COORDINATOR, demand.id, True)
    content, _ = export_list(lists, COORDINATOR, "demands", "csv")
    [row] = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert row["状态"] == "审核中" and row["合规审核期限"] == "2026-02-25 00:00" and row["答复期限"] == "2026-03-10 00:00"
    assert row["时效"] == "按时" and row["合规审核时间"] == "2026-02-24 10:00"
    xml, _ = export_list(lists, COORDINATOR, "demands", "xml")
    root = etree.fromstring(xml)
    lists_schema().assertValid(root)
    ns = {"l": "urn:exnode:lists:v1"}
    assert root.findtext("l:demand/l:answerDeadline", namespaces=ns) == "2026-03-10T00:00:00+08:00"
    assert root.findtext("l:demand/l:complianceLate", namespaces=ns) == "false"


def test_demands_filed_before_the_working_day_migration_keep_their_deadlines(database_url: str):
    command.upgrade(alembic_config(database_url), "0010")
    engine = make_engine(database_url)
    filed, deadline = dt.datetime(2026, 11, 2, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 12, 1, tzinfo=dt.UTC)
    columns = ("id, requester_code, provider_code, resource_code, resource_name, description, items, purpose, "
               "legal_basis, frequency, contact, state, reason, decided_by, grant_id, created_at, updated_at, "
               "review_deadline, version")
    with engine.begin() as connection:
        for demand_id, state, decided_by in (("XQ-OPEN", "UNDER_REVIEW", ""), ("XQ-DONE", "APPROVED", "li@mca"),
                                             ("XQ-RULE", "APPROVED", "rule:无条件共享")):
            connection.execute(text(
                f"INSERT INTO demands ({columns}) VALUES (:id, :r, :p, :c, '', '', '[]', 'p', 'b', '', 'c', :state, '', "
                ":by, '', :filed, :updated, :deadline, 1)"),
                {"id": demand_id, "r": OTHER_PROVIDER, "p": PROVIDER, "c": CONDITIONAL, "state": state,
                 "by": decided_by, "filed": filed, "updated": filed + dt.timedelta(days=3), "deadline": deadline})
    command.upgrade(alembic_config(database_url), "head")
    uow = SqlUnitOfWorkFactory(engine)
    with uow() as handle:
        open_, done, rule = (handle.lists.get_demand(i) for i in ("XQ-OPEN", "XQ-DONE", "XQ-RULE"))
    engine.dispose()
    assert open_.review_deadline == open_.answer_deadline == deadline and open_.answered_at is None
    assert done.answer_deadline == deadline and done.answered_at == filed + dt.timedelta(days=3)
    assert not done.answer_late
    assert rule.answer_deadline is None and rule.answered_at is None


def test_a_node_without_the_current_year_starts_warns_once_and_its_metric_says_so(tmp_path: Path, caplog):
    clock = FixedClock(dt.datetime(2031, 3, 3, 1, tzinfo=dt.UTC))  # no holiday file for 2031
    with caplog.at_level(logging.WARNING, logger="node.bootstrap"):
        built = bootstrap.build(make_config(tmp_path / "node"), clock=clock, start_audit=False)
    try:
        consumer = Principal("王芳", OTHER_PROVIDER, frozenset({"consumer"}))
        bootstrap.load_sample(built)
        demand = built.lists.file_demand(consumer, DemandRequest(
            OTHER_PROVIDER, "311140001/000001", purpose="低保资格复核", legal_basis="办法", contact="王芳"))
        # Monday 2031-03-03 09:00: 10 working days of Mondays to Fridays, the last is Monday 03-17
        assert demand.review_deadline == bj(2031, 3, 18)
        warnings = [r for r in caplog.records if "has no 2031" in r.getMessage()]
        assert len(warnings) == 1
        registry = CollectorRegistry()
        registry.register(NodeCollector(built, clock))  # type: ignore[arg-type]
        samples = {(s.name, s.labels.get("year", s.labels.get("stage", ""))): s.value
                   for family in text_string_to_metric_families(generate_latest(registry).decode())
                   for s in family.samples}
    finally:
        built.close()
    assert samples[("exnode_calendar_year_missing", "2031")] == 1
    assert samples[("exnode_demands_open", "UNDER_REVIEW")] == 1
    assert samples[("exnode_demands_overdue", "UNDER_REVIEW")] == 0


# -- over gRPC ----------------------------------------------------------------------------------------------

LOW_INCOME = "311140001/000001"  # 城乡最低生活保障对象信息, 有条件共享, PROVIDER, in the sample catalog


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[RunningNode, FixedClock]]:
    config = make_config(tmp_path / "node")
    config = replace(config, node=replace(config.node, department_code=NODE_DEPT),
                     lists=replace(config.lists, compliance_review=True))
    clock = FixedClock(FRIDAY_BEFORE_SPRING_FESTIVAL)
    node = RunningNode(config, clock=clock)
    load_sample(node.node)
    yield node, clock
    node.close()


def lists_as(node: RunningNode, dept: str, *roles: str) -> lists_pb2_grpc.ListsServiceStub:
    return lists_pb2_grpc.ListsServiceStub(node.channel_as(dept, roles, f"{roles[0]}@{dept[-4:]}"))


def test_over_grpc_review_needs_the_coordinator_and_a_late_answer_is_recorded_not_refused(running):
    node, clock = running
    consumer = lists_as(node, OTHER_PROVIDER, "consumer")
    reviewer = lists_as(node, PROVIDER, "reviewer")
    coordinator = lists_as(node, NODE_DEPT, "coordinator")
    filed = consumer.FileDemand(pb.FileDemandRequest(demand=pb.Demand(
        resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")))
    assert filed.state == pb.COMPLIANCE_REVIEW
    assert filed.compliance_deadline.ToDatetime(tzinfo=dt.UTC) == bj(2026, 2, 25)
    with pytest.raises(grpc.RpcError) as denied:
        reviewer.ReviewDemand(pb.ReviewDemandRequest(id=filed.id, passed=True))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED and "coordinator" in denied.value.details()
    with pytest.raises(grpc.RpcError) as unreasoned:
        coordinator.ReviewDemand(pb.ReviewDemandRequest(id=filed.id, passed=False))
    assert unreasoned.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in unreasoned.value.details()
    due = coordinator.ListDueDemands(pb.ListDueDemandsRequest(date="2026-02-24"))
    assert [d.id for d in due.demands] == [filed.id] and due.date == "2026-02-24"
    with pytest.raises(grpc.RpcError) as bad_date:
        coordinator.ListDueDemands(pb.ListDueDemandsRequest(date="24.02.2026"))
    assert bad_date.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "date" in bad_date.value.details()
    clock.now = bj(2026, 2, 24, 10)
    forwarded = coordinator.ReviewDemand(pb.ReviewDemandRequest(id=filed.id, passed=True))
    assert forwarded.state == pb.UNDER_REVIEW and not forwarded.compliance_late
    clock.now = bj(2026, 3, 12, 9)  # two days past the provider's deadline (end of Mar 9)
    assert reviewer.GetDemand(pb.GetDemandRequest(id=filed.id)).overdue
    answered = reviewer.DecideDemand(pb.DecideDemandRequest(id=filed.id, approve=True, default_masking=True))
    assert answered.state == pb.APPROVED and answered.answer_late and answered.grant_id
    stats = {s.stage: s for s in coordinator.DemandTimeliness(pb.TimelinessRequest(since="2026-02-01")).stages}
    assert stats["UNDER_REVIEW"].late == 1 and stats["COMPLIANCE_REVIEW"].on_time == 1
    entries = node.node.audit.query(AuditFilter(target=f"demand:{filed.id}")).entries
    assert any("answered late" in e.record.detail for e in entries)
