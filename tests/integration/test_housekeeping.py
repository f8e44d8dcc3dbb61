"""The node's daily jobs change state only as the node itself, and every change is in the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.lists import DemandRequest, DemandState
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


def test_an_undecided_demand_expires_after_its_deadline_and_the_expiry_is_audited(node):
    built, clock = node
    consumer = Principal("王芳", OTHER_PROVIDER, frozenset({"consumer"}))
    demand = built.lists.file_demand(consumer, DemandRequest(
        OTHER_PROVIDER, LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳"))
    assert demand.state is DemandState.UNDER_REVIEW
    assert bootstrap.run_housekeeping(built)["expired"] == []  # not yet due
    clock.advance(days=11)
    done = bootstrap.run_housekeeping(built)
    assert done["expired"] == [demand.id]
    assert built.lists.get_demand(consumer, demand.id).state is DemandState.EXPIRED
    entries = built.audit.query(AuditFilter(target=f"demand:{demand.id}")).entries
    assert [(e.record.action, e.record.subject) for e in entries] == [("housekeeping/expire-demand", "system:node")]
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
