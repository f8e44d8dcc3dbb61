"""What an operator sees of a running `exnode serve`: the metrics the dashboard and the alert rules use
are the ones the node exports, its JSON log lines lead to the audit entries (and back) by request id,
and the audit verification it runs reaches Prometheus."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from exnode.v1 import catalog_pb2, catalog_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.observed import MetricsNode
from tests.fault.support import EXNODE, PROVIDER, exnode, wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "exnode-dashboard.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself, not the node; the rules may use them."""
EXNODE_NAME = re.compile(r"\bexnode_[a-zA-Z0-9_]+")
SELECTOR_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsNode]:
    root = tmp_path_factory.mktemp("observed")
    data = root / "node"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", f"t{uuid.uuid4().hex[:10]}")
    assert init.returncode == 0, init.stderr
    node = MetricsNode(data, root / "serve.log")
    node.start()
    yield node
    node.stop()
    node.close()


def exported_names(exposition: str) -> set[str]:
    """Every series name the exposition can hold, families without samples yet included (their TYPE line)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    expressions += [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    return expressions


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
            for rule in group["rules"]]


def named_metrics(expression: str) -> set[str]:
    selectors = {name for name in SELECTOR_NAME.findall(expression) if not name.startswith("exnode_")}
    return set(EXNODE_NAME.findall(expression)) | selectors


def test_dashboard_and_alert_rules_name_only_metrics_the_node_exports(served: MetricsNode):
    exported = exported_names(served.scrape())
    expressions = dashboard_expressions() + rule_expressions()
    assert len(expressions) > 20
    unknown: dict[str, str] = {}
    for expression in expressions:
        names = named_metrics(expression)
        assert names, f"names no metric: {expression}"
        unknown.update((name, expression) for name in names - exported - PROMETHEUS_OWN)
    assert not unknown, f"named but not exported by the node: {unknown}"
    # and the README's table lists every exnode metric the node exports (under its family name)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    families = {family.name for family in text_string_to_metric_families(served.scrape())
                if family.name.startswith("exnode_")}
    missing = {name for name in families if f"`{name}" not in readme}
    assert not missing, f"exported but not in the README's metrics table: {sorted(missing)}"


def test_an_rpc_log_line_and_its_audit_entry_share_the_request_id(served: MetricsNode):
    stub = catalog_pb2_grpc.CatalogServiceStub(served.channel_as(PROVIDER, ("catalog_admin",)))
    response, call = stub.GetResource.with_call(catalog_pb2.GetResourceRequest(code="311140001/000001"), timeout=30)
    request_id = dict(call.initial_metadata())["x-request-id"]
    assert response.code == "311140001/000001"

    def log_line() -> dict | None:
        for line in served.log.read_text(encoding="utf-8").splitlines():
            if line.startswith("{") and request_id in line:
                return json.loads(line)
        return None

    wait_until(log_line, 30, f"no log line with request id {request_id}: {served.log_tail()}")
    line = log_line()
    assert line is not None
    assert line["request_id"] == request_id and line["method"] == "CatalogService/GetResource"
    assert {"time", "level", "logger", "message"} <= set(line)
    officer = served.token(PROVIDER, ("security_officer",))
    query = exnode("audit", "query", "--server", served.address, "--token", officer, "--json",
                   "--action", "CatalogService/GetResource")
    assert query.returncode == 0, query.stderr
    entries = [e for e in json.loads(query.stdout) if e["request_id"] == request_id]
    assert len(entries) == 1 and entries[0]["result"] == "OK"


def test_every_serve_log_line_is_one_json_object(served: MetricsNode):
    lines = [line for line in served.log.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith(("=====", "exnode: "))]  # the start banners of ServedNode and serve
    assert lines
    for line in lines:
        document = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(document), line


def test_audit_verification_reaches_the_metrics(served: MetricsNode):
    officer = served.token(PROVIDER, ("security_officer",))
    verify = exnode("audit", "verify", "--server", served.address, "--token", officer)
    assert verify.returncode == 0, verify.stderr
    samples = {s.name: s.value for f in text_string_to_metric_families(served.scrape()) for s in f.samples}
    assert samples["exnode_audit_verify_ok"] == 1 and samples["exnode_audit_verify_timestamp_seconds"] > 0
    assert samples["exnode_database_up"] == 1 and samples["exnode_audit_chain_last_sequence"] >= 1


def test_exnode_health_prints_every_dependency(served: MetricsNode):
    result = subprocess.run([*EXNODE, "health", "--server", served.address, "--json"],
                            capture_output=True, text=True, timeout=60)
    statuses = json.loads(result.stdout)
    assert set(statuses) == {"overall", "liveness", "readiness", "database", "broker"}
    assert statuses["liveness"] == statuses["database"] == statuses["overall"] == "SERVING"
    assert result.returncode == (0 if statuses["readiness"] == "SERVING" else 1)


def test_refused_logins_are_counted_by_reason(served: MetricsNode):
    with grpc.insecure_channel(served.address) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetResource(catalog_pb2.GetResourceRequest(code="311140001/000001"), timeout=30)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    samples = {(s.name, s.labels.get("reason", "")): s.value
               for f in text_string_to_metric_families(served.scrape()) for s in f.samples}
    assert samples[("exnode_auth_failures_total", "missing_token")] >= 1, samples
