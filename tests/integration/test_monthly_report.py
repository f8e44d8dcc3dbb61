"""统计月报 on both databases: `exnode report monthly --month 2026-11` writes the resources and departments
CSV (UTF-8 with a BOM) and the XML, which validates against report.xsd; the node's signature covers the
files and fails on any change; a bad month is a usage error naming it; only the node's department or an
operator reports the whole node."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc
from lxml import etree

from catalog.lists import BEIJING, DemandRequest
from catalog.objections import RecordKey, raise_objection
from node.bootstrap import load_sample
from node.cli import main as cli_main
from node.files.report import report_schema
from security.audit import AuditRecord
from security.identity import Principal
from security.keys import public_keys_document
from security.report import report_signing_input
from tests.conftest import OTHER_PROVIDER, PROVIDER, FixedClock
from tests.integration.grpc_node import RunningNode, make_config

NODE_DEPT = "11100000000013542N"
LOW_INCOME = "311140001/000001"  # 有条件共享, PROVIDER
ELDERLY_HOMES = "311140002/000001"  # 无条件共享


def bj(year: int, month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=BEIJING)


@pytest.fixture
def running(tmp_path: Path, database_url: str) -> Iterator[tuple[RunningNode, FixedClock]]:
    config = make_config(tmp_path / "node", database_url)
    config = replace(config, node=replace(config.node, department_code=NODE_DEPT))
    clock = FixedClock(bj(2026, 11, 2))
    node = RunningNode(config, clock=clock)
    load_sample(node.node)
    yield node, clock
    node.close()


def test_the_monthly_report_counts_the_month_validates_and_is_signed(running, tmp_path, capsys):
    node, clock = running
    lists = node.node.lists
    consumer = Principal("wang", OTHER_PROVIDER, frozenset({"consumer"}))
    reviewer = Principal("li", PROVIDER, frozenset({"reviewer"}))
    ask = DemandRequest(OTHER_PROVIDER, LOW_INCOME, purpose="低保复核", legal_basis="办法", contact="王芳")
    late = lists.file_demand(consumer, ask)  # Mon Nov 2: never delivered, 10 working days: due end of Nov 16
    on_time = lists.file_demand(consumer, ask)
    lists.decide(reviewer, on_time.id, True)
    lists.record_delivery(PROVIDER, LOW_INCOME, "", "B-1", 40, at=bj(2026, 11, 3))  # received from the provider
    lists.record_delivery(PROVIDER, LOW_INCOME, OTHER_PROVIDER, "B-1", 40, at=bj(2026, 11, 3))
    lists.record_delivery(PROVIDER, LOW_INCOME, OTHER_PROVIDER, "B-0", 7, at=bj(2026, 10, 30))  # October
    clock.now = bj(2026, 11, 20)
    lists.decide(reviewer, late.id, False, "涉及隐私")  # answered late
    node.node.disputes.file(consumer, late.id, "低保复核为法定职责")
    with node.node.uow(write=True) as uow:
        uow.objections.add(raise_objection("YY-1", RecordKey(PROVIDER, LOW_INCOME, "DB-1"), "", ("姓名",),
                                           OTHER_PROVIDER, "wang", "姓名有误", (), bj(2026, 11, 21),
                                           bj(2026, 11, 28)))
        uow.commit()
    clock.now = bj(2026, 12, 1, 9)
    token = node.token(NODE_DEPT, ("consumer",), "chief")
    out = tmp_path / "report"
    assert cli_main(["report", "monthly", "--month", "2026-11", "--server", node.address, "--token", token,
                     "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    prefix = f"统计月报-{node.config.node.id}-2026-11"
    assert names == sorted([f"{prefix}-资源.csv", f"{prefix}-部门.csv", f"{prefix}.xml", f"{prefix}.sig.json"])
    resources_csv = (out / f"{prefix}-资源.csv").read_bytes()
    assert resources_csv.startswith(b"\xef\xbb\xbf")
    rows = {r["资源代码"]: r for r in csv.DictReader(io.StringIO(resources_csv.decode("utf-8-sig")))}
    low = rows[LOW_INCOME]
    assert (low["使用部门数"], low["新增授权"], low["交付次数"], low["交付记录数"], low["接收记录数"], low["异议数"]) == (
        "1", "1", "1", "40", "40", "1")
    assert rows[ELDERLY_HOMES]["交付次数"] == "0"
    departments = {r["部门代码"]: r for r in csv.DictReader(io.StringIO(
        (out / f"{prefix}-部门.csv").read_bytes().decode("utf-8-sig")))}
    provider = departments[PROVIDER]
    assert (provider["按时答复"], provider["超期答复"], provider["争议数"], provider["未办结异议"]) == ("1", "1", "1", "1")
    assert departments[OTHER_PROVIDER]["争议数"] == "1"
    xml = (out / f"{prefix}.xml").read_bytes()
    root = etree.fromstring(xml)
    report_schema().assertValid(root)
    assert root.get("month") == "2026-11" and root.get("department") == NODE_DEPT
    signature = json.loads((out / f"{prefix}.sig.json").read_text(encoding="utf-8"))
    files = {name: (out / name).read_bytes() for name in signature["files"]}
    public = node.node.keys.public[signature["key_id"]]
    statement = report_signing_input(signature["node_id"], "2026-11", files)
    assert public.verify(statement, bytes.fromhex(signature["signature"]))
    keys = tmp_path / "public-keys.json"
    keys.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)), encoding="utf-8")
    capsys.readouterr()
    assert cli_main(["report", "verify", str(out / f"{prefix}.sig.json"), "--keys", str(keys)]) == 0
    assert "ok: the 2026-11 report" in capsys.readouterr().out
    (out / f"{prefix}-部门.csv").write_bytes(b"\xef\xbb\xbf" + b"x")  # changed after signing
    assert cli_main(["report", "verify", str(out / f"{prefix}.sig.json"), "--keys", str(keys)]) == 1
    assert "does not verify" in capsys.readouterr().err
    files[f"{prefix}.xml"] = xml.replace(b"<r:grants>1<", b"<r:grants>9<").replace(b"<grants>1<", b"<grants>9<")
    assert files[f"{prefix}.xml"] != xml
    assert not public.verify(report_signing_input(signature["node_id"], "2026-11", files),
                             bytes.fromhex(signature["signature"]))


def test_a_bad_month_names_it_and_a_department_cannot_report_the_whole_node(running):
    node, _ = running
    own = lists_pb2_grpc.ListsServiceStub(node.channel_as(NODE_DEPT, ("consumer",)))
    with pytest.raises(grpc.RpcError) as bad:
        own.MonthlyReport(pb.MonthlyReportRequest(month="2026-13"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "month" in bad.value.details()
    other = lists_pb2_grpc.ListsServiceStub(node.channel_as(OTHER_PROVIDER, ("consumer",)))
    with pytest.raises(grpc.RpcError) as denied:
        other.MonthlyReport(pb.MonthlyReportRequest(month="2026-11"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_monthly_report_counts_the_queries_and_verifications_this_node_answered(running):
    """From the audit trail: answered QueryRecords calls and VerifyClaim verdicts, including those another
    node asked over RabbitMQ; neither refusals, nor verdicts another node gave (its report counts them),
    nor another month."""
    node, _ = running

    def entry(action: str, at: dt.datetime, result: str = "OK", detail: str = "",
              resource: str = LOW_INCOME) -> AuditRecord:
        return AuditRecord(at=at, request_id="r", subject="wang", department_code=OTHER_PROVIDER,
                           roles=("consumer",), action=action, target=f"resource:{resource}", result=result,
                           detail=detail)

    node.node.audit_writer.append([
        entry("QueryService/QueryRecords", bj(2026, 11, 3)), entry("QueryService/QueryRecords", bj(2026, 11, 30, 23)),
        entry("QueryService/QueryRecords", bj(2026, 11, 4), "PERMISSION_DENIED"),
        entry("QueryService/QueryRecords", bj(2026, 10, 31, 23)), entry("QueryService/QueryRecords", bj(2026, 12, 1, 0)),
        entry("QueryService/VerifyClaim", bj(2026, 11, 5)), entry("rpc/VerifyClaim", bj(2026, 11, 6)),
        entry("QueryService/VerifyClaim", bj(2026, 11, 7), detail="grant G; 1 key; answered by node region"),
        entry("QueryService/VerifyClaim", bj(2026, 11, 8), "RESOURCE_EXHAUSTED"),
        entry("QueryService/VerifyClaim", bj(2026, 11, 9), resource=ELDERLY_HOMES),
    ])
    lines = {r.resource_code: r for r in node.node.report.compute("2026-11").resources}
    assert (lines[LOW_INCOME].queries, lines[LOW_INCOME].verifications) == (2, 2)
    assert (lines[ELDERLY_HOMES].queries, lines[ELDERLY_HOMES].verifications) == (0, 1)
