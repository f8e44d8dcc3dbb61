"""`exnode lists …` as a user meets it, against `exnode serve` with the sample catalog: the responsibility
list, filing and deciding demands, grants, list files, and usage errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import ADMIN_DEPT, Served, exnode, issue

CONSUMER_DEPT = "11150100011627354Q"  # 呼和浩特市民政局
LOW_INCOME = "311140001/000001"  # 城乡最低生活保障对象信息: 有条件共享, provided by ADMIN_DEPT
CHECK_RESULTS = "311140001/000005"  # 社会救助家庭经济状况核对结果信息: 不予共享, ADMIN_DEPT
BOM = b"\xef\xbb\xbf"


class Lists:
    """The served node with a token per role."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.consumer = issue(served.data, CONSUMER_DEPT, "consumer")
        self.reviewer = issue(served.data, ADMIN_DEPT, "reviewer")

    def cli(self, *args: str, token: str | None = None, check: bool = True):
        return self.served.cli("lists", *args, token=token, check=check)

    def json_out(self, *args: str, token: str | None = None):
        return json.loads(self.cli(*args, "--json", token=token).stdout)

    def file(self, resource: str) -> dict:
        return self.json_out("demands", "file", "--resource", resource, "--purpose", "医疗救助对象身份核验",
                         "--basis", "《社会救助暂行办法》第二十九条", "--contact", "王五 0471-6612345",
                         token=self.consumer)


@pytest.fixture
def lists(tmp_path: Path) -> Iterator[Lists]:
    exnode("init", "--data", str(tmp_path / "node"), "--sample", "--dev", "--department-code", "11100000000013542N")
    served = Served(tmp_path / "node")
    try:
        yield Lists(served)
    finally:
        if served.process.poll() is None:
            served.stop()


def test_responsibilities_as_json_and_as_a_csv_file(lists: Lists, tmp_path: Path):
    lines = lists.json_out("responsibilities")
    assert len(lines) == 58
    low_income = next(o for o in lines if o["resource_code"] == LOW_INCOME)
    assert low_income["resource_name"] == "城乡最低生活保障对象信息"
    assert low_income["department_code"] == ADMIN_DEPT and low_income["provider_name"] == "民政部社会救助司"
    assert low_income["compliance"] == "NOT_YET_DUE" and low_income["due_rule"] == "每月，周期结束后 5 日内报送"
    assert {o["compliance"] for o in lines} <= {"NOT_YET_DUE", "UNSCHEDULED", "NEVER_DELIVERED"}
    ours = lists.json_out("responsibilities", "--dept", ADMIN_DEPT)
    assert len(ours) == 6 and {o["department_code"] for o in ours} == {ADMIN_DEPT}

    out = tmp_path / "责任清单.csv"
    written = lists.cli("responsibilities", "--dept", ADMIN_DEPT, "--export", "csv", "--out", str(out))
    assert str(out) in written.stdout
    data = out.read_bytes()
    assert data.startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert len(rows) == 6 and "城乡最低生活保障对象信息" in {row["资源名称"] for row in rows}

    # the whole node's list is the node's department's or an operator's to report
    refused = lists.cli("responsibilities", "--export", "csv", "--out", str(tmp_path / "all.csv"), check=False)
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "all.csv").exists()
    operator = issue(lists.served.data, ADMIN_DEPT, "operator")
    whole = tmp_path / "whole.csv"
    lists.cli("responsibilities", "--export", "csv", "--out", str(whole), token=operator)
    assert whole.read_bytes().startswith(BOM) and "婚姻登记机关名录" in whole.read_bytes().decode("utf-8-sig")


def test_file_approve_and_see_the_grant(lists: Lists):
    filed = lists.file(LOW_INCOME)
    assert filed["state"] == "UNDER_REVIEW" and filed["requester_code"] == CONSUMER_DEPT
    assert filed["provider_code"] == ADMIN_DEPT and filed["resource_name"] == "城乡最低生活保障对象信息"
    assert "公民身份号码" in filed["items"] and filed["review_deadline"].endswith("+08:00")

    pending = lists.json_out("demands", "--state", "UNDER_REVIEW", token=lists.reviewer)
    assert [d["id"] for d in pending] == [filed["id"]]
    approved = lists.json_out("demands", "approve", filed["id"], token=lists.reviewer)
    assert approved["state"] == "APPROVED" and approved["grant_id"]

    (grant,) = lists.json_out("grants", token=lists.consumer)
    assert grant["id"] == approved["grant_id"] and grant["state"] == "ACTIVE"
    assert grant["consumer_code"] == CONSUMER_DEPT and grant["provider_code"] == ADMIN_DEPT
    assert grant["masking"]["公民身份号码"] == "keep:6,4" and grant["masking"]["联系电话"] == "keep:3,4"
    shown = lists.json_out("demands", "show", filed["id"], token=lists.consumer)
    assert shown["state"] == "APPROVED" and shown["decided_by"]

    again = lists.cli("demands", "approve", filed["id"], token=lists.reviewer, check=False)
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr and "APPROVED" in again.stderr
    revoked = lists.json_out("grants", "revoke", grant["id"], "--reason", "核对工作结束", token=lists.reviewer)
    assert revoked["state"] == "REVOKED" and revoked["revoked_reason"] == "核对工作结束"


def test_rejections_and_usage_errors(lists: Lists):
    refused = lists.file(CHECK_RESULTS)
    assert refused["state"] == "REJECTED" and refused["reason"].startswith("不予共享")
    filed = lists.file(LOW_INCOME)

    no_reason = lists.cli("demands", "reject", filed["id"], token=lists.reviewer, check=False)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr and "usage" in no_reason.stderr
    assert lists.json_out("demands", "show", filed["id"], token=lists.consumer)["state"] == "UNDER_REVIEW"

    stranger = lists.cli("demands", "reject", filed["id"], "--reason", "不符合", token=lists.consumer, check=False)
    assert stranger.returncode == 1 and "PERMISSION_DENIED" in stranger.stderr
    assert len(stranger.stderr.strip().splitlines()) == 1

    rejected = lists.json_out("demands", "reject", filed["id"], "--reason", "用途与共享条件不符", token=lists.reviewer)
    assert rejected["state"] == "REJECTED" and rejected["reason"] == "用途与共享条件不符"
    mine = lists.json_out("demands", token=lists.consumer)
    assert sorted(d["state"] for d in mine) == ["REJECTED", "REJECTED"]

    nothing = lists.cli("demands", "file", "--purpose", "p", "--basis", "b", "--contact", "c",
                        token=lists.consumer, check=False)
    assert nothing.returncode == 2 and "--description" in nothing.stderr
    unknown = lists.cli("demands", "file", "--resource", "311140001/999999", "--purpose", "p", "--basis", "b",
                        "--contact", "c", token=lists.consumer, check=False)
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr and "311140001/999999" in unknown.stderr
