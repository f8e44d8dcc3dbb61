"""The node's daily jobs change state only as the node itself, and every change is in the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.lists import BEIJING, DemandRequest, DemandState
from node import bootstrap
from node.bootstrap import load_sample
from node.storage.audit_repository import AuditFilter
from security.identity import Principal
from tests.conftest import OTHER_PROVIDER, FixedClock
from tests.integration.grpc_node import make_config

LOW_INCOME = "311140001/000001"  # 城乡最低生活保障对象信息, 有条件共享, in the sample catalog


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[bootstrap.Node, FixedClock]]:
    clock = FixedClock(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC))
    built = bootstrap.build(make_config(tmp_path / "node"), clock=clock)
    load_sample(built)
    yield built, clock
    built.close()


def test_a_review_is_reminded_the_day_before_and_escalated_after_its_deadline_all_audited(node):
    built, clock = node
    consumer = Principal("王芳", OTHER_PROVIDER, frozenset({"consumer"}))
    demand = built.lists.file_demand(consumer, DemandRequest(
        OTHER_PROVIDER, LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳"))
    assert demand.state is DemandState.UNDER_REVIEW
    done = bootstrap.run_housekeeping(built)
    assert done["escalated"] == [] and done["due_tomorrow"] == []  # not yet due
    # filed Monday 2026-03-02 09:00 Beijing, never delivered: 10 working days, the last is Monday 03-16
    assert demand.review_deadline == dt.datetime(2026, 3, 17, tzinfo=BEIJING)
    clock.now = dt.datetime(2026, 3, 15, 1, 0, tzinfo=dt.UTC)  # Sunday 09:00: due tomorrow
    assert bootstrap.run_housekeeping(built)["due_tomorrow"] == [demand.id]
    clock.now = dt.datetime(2026, 3, 17, 1, 0, tzinfo=dt.UTC)
    done = bootstrap.run_housekeeping(built)
    assert done["escalated"] == [demand.id] and done["expired"] == []
    assert bootstrap.run_housekeeping(built)["escalated"] == []
    assert built.lists.get_demand(consumer, demand.id).state is DemandState.UNDER_REVIEW
    entries = built.audit.query(AuditFilter(target=f"demand:{demand.id}")).entries
    assert [(e.record.action, e.record.subject) for e in sorted(entries, key=lambda e: e.sequence)] == [
        ("housekeeping/remind-demand", "system:node"), ("housekeeping/escalate-demand", "system:node")]
    assert built.audit.verify().ok


def test_retention_purge_is_itself_audited_and_the_rest_still_verifies(node):
    built, clock = node
    built.audit_writer.checkpoint_if_due(force=True)
    clock.advance(days=181)
    built.audit_writer.append([bootstrap.system_record(
        Principal.system("node"), clock(), "test/recent", "audit", "a recent entry")])
    done = bootstrap.run_housekeeping(built)
    assert done["purged"] >= 1 and done["anchor"] >= 1
    recorded = built.audit.query(AuditFilter(action="housekeeping/audit-retention")).entries
    assert len(recorded) == 1 and f"checkpoint {done['anchor']}" in recorded[0].record.detail
    result = built.audit.verify()
    assert result.ok and result.first_sequence == done["anchor"] + 1
