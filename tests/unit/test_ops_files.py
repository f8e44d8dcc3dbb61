"""The operator's files in ops/ are well-formed: Prometheus rule and scrape files (what `promtool check`
would look at first; promtool is not installed here) and the Grafana dashboard. That they name only
metrics the node exports is tests/e2e/test_observability.py's job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

OPS = Path(__file__).resolve().parents[2] / "ops"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def test_alert_rules_have_the_structure_prometheus_expects():
    document = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    names = []
    for group in document["groups"]:
        assert set(group) <= {"name", "rules", "interval", "limit"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
            assert "for" not in rule or DURATION.match(rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]
            names.append(rule["alert"])
    assert len(names) == len(set(names))
    assert {"ExnodeOutboxGrowing", "ExnodeOutboxOld", "ExnodeDeadLetters", "ExnodeBrokerDown",
            "ExnodeAuditVerifyFailed", "ExnodeAuthFailureBurst"} <= set(names)


def test_the_scrape_config_loads_the_rules_and_scrapes_the_node():
    document = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    assert document["rule_files"] == ["alerts.yml"]
    [job] = document["scrape_configs"]
    assert job["job_name"] == "exnode" and job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]


def test_the_dashboard_is_grafana_json_with_unique_panels_and_queries():
    dashboard = json.loads((OPS / "grafana" / "exnode-dashboard.json").read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(target["expr"] for target in panel["targets"])
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
