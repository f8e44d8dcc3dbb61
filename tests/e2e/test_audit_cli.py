"""The audit trail as a security officer meets it: `exnode audit query / verify / export / purge` against a
served node, an export file verified offline, and a stopped node's database verified (and tampered with)
directly."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import ADMIN_DEPT, Served, exnode, issue


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Served]:
    exnode("init", "--data", str(tmp_path / "node"), "--sample", "--dev")
    served = Served(tmp_path / "node")
    yield served
    if served.process.poll() is None:
        served.stop()


def catalog_calls(node: Served) -> str:
    """A listing, a lookup and a refused publish, as the catalog_admin; returns the resource code used."""
    listing = json.loads(node.cli("catalog", "list", "--json", "--limit", "3", "--provider", ADMIN_DEPT).stdout)
    code = listing["resources"][0]["code"]
    node.cli("catalog", "show", code, "--json")
    refused = node.cli("catalog", "publish", code, check=False)
    assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stderr
    return code


def query(node: Served, token: str, *args: str) -> list[dict]:
    return json.loads(node.cli("audit", "query", "--json", *args, token=token).stdout)


def entry_lines(path: Path) -> list[tuple[int, dict]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(i, json.loads(line)) for i, line in enumerate(lines) if json.loads(line)["type"] == "entry"]


def rewrite_line(path: Path, index: int, **changes: object) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    data = json.loads(lines[index])
    data.update(changes)
    lines[index] = json.dumps(data, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_an_officer_queries_verifies_and_exports_the_trail_and_an_edited_export_is_caught(
        node: Served, tmp_path: Path):
    code = catalog_calls(node)
    officer = issue(node.data, ADMIN_DEPT, "security_officer")

    entries = query(node, officer)
    sequences = [e["sequence"] for e in entries]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == len(sequences)
    assert entries[-1]["action"] == "exnode init --sample" and entries[-1]["sequence"] == 1
    by_action = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
    lookup = by_action["CatalogService/GetResource"][0]
    assert lookup["subject"] == "dev-user" and lookup["department_code"] == ADMIN_DEPT
    assert lookup["roles"] == ["catalog_admin"] and lookup["result"] == "OK" and code in lookup["target"]
    refused = by_action["CatalogService/PublishResource"][0]
    assert refused["result"] == "FAILED_PRECONDITION" and refused["detail"]
    assert any(e["result"] == "OK" for e in by_action["CatalogService/ListResources"])

    only = query(node, officer, "--action", "CatalogService/PublishResource", "--dept", ADMIN_DEPT)
    assert [e["sequence"] for e in only] == [e["sequence"] for e in by_action["CatalogService/PublishResource"]]
    assert query(node, officer, "--subject", "nobody") == []
    assert len(query(node, officer, "--limit", "2")) == 2

    verified = node.cli("audit", "verify", token=officer)
    assert verified.returncode == 0 and "audit verify: OK (node)" in verified.stdout
    report = json.loads(node.cli("audit", "verify", "--json", token=officer).stdout)
    assert report["ok"] and report["first_broken_sequence"] == 0 and report["entries_checked"] >= len(entries)

    exported = tmp_path / "audit.jsonl"
    node.cli("audit", "export", "--out", str(exported), token=officer)
    keys = node.data / "keys" / "public-keys.json"
    offline = exnode("audit", "verify", "--file", str(exported), "--keys", str(keys), check=False)
    assert offline.returncode == 0 and "audit verify: OK" in offline.stdout, offline.stdout + offline.stderr
    in_file = entry_lines(exported)
    assert {e["sequence"] for _, e in in_file} >= {e["sequence"] for e in entries}

    edited = tmp_path / "edited.jsonl"
    shutil.copy(exported, edited)
    index, victim = next((i, e) for i, e in in_file if e["action"] == "CatalogService/GetResource")
    rewrite_line(edited, index, subject="someone-else")
    caught = exnode("audit", "verify", "--file", str(edited), "--keys", str(keys), check=False)
    assert caught.returncode == 1
    assert f"entry {victim['sequence']}" in caught.stdout and "altered" in caught.stdout, caught.stdout

    shutil.copy(exported, edited)
    index, victim = in_file[2]
    rewrite_line(edited, index, detail="删改的说明")
    caught = exnode("audit", "verify", "--file", str(edited), "--keys", str(keys), check=False)
    assert caught.returncode == 1 and f"FAILED ({edited}) at entry {victim['sequence']}" in caught.stdout

    broken = edited.read_text(encoding="utf-8").splitlines()
    broken[3] = "{this is not json"
    edited.write_text("\n".join(broken) + "\n", encoding="utf-8")
    malformed = exnode("audit", "verify", "--file", str(edited), "--keys", str(keys), check=False)
    assert malformed.returncode == 1 and "line 4" in malformed.stdout and "Traceback" not in malformed.stderr


def test_only_a_security_officer_reads_the_trail_and_the_refusal_is_audited(node: Served):
    for args in (("audit", "query"), ("audit", "verify"), ("audit", "export")):
        denied = node.cli(*args, check=False)  # as the catalog_admin
        assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr, denied.stderr
        assert "Traceback" not in denied.stderr
    officer = issue(node.data, ADMIN_DEPT, "security_officer")
    refusals = query(node, officer, "--action", "AuditService/QueryAudit", "--result", "PERMISSION_DENIED")
    assert len(refusals) == 1 and refusals[0]["roles"] == ["catalog_admin"]
    assert node.cli("catalog", "list", "--limit", "1", check=False, token=officer).returncode == 1


def test_a_stopped_node_verifies_locally_across_a_key_rotation_and_a_tampered_row_is_named(
        node: Served, tmp_path: Path):
    data = node.data
    catalog_calls(node)
    officer = issue(data, ADMIN_DEPT, "security_officer")
    before_rotation = tmp_path / "before.jsonl"
    node.cli("audit", "export", "--out", str(before_rotation), token=officer)
    old_keys = tmp_path / "old-public-keys.json"
    shutil.copy(data / "keys" / "public-keys.json", old_keys)
    assert node.stop() == 0

    local = exnode("audit", "verify", "--local", "--data", str(data), check=False)
    assert local.returncode == 0 and "audit verify: OK (database)" in local.stdout, local.stdout
    assert "0 entries after the last checkpoint" in local.stdout  # SIGTERM signs the tail
    # Without --local and --server, a node that does not answer is verified through its database.
    fallback = exnode("audit", "verify", "--data", str(data), check=False, env={"EXNODE_SERVER_LISTEN": node.address})
    assert fallback.returncode == 0 and "audit verify: OK (database)" in fallback.stdout, fallback.stderr
    assert f"no node answers at {node.address}" in fallback.stderr
    assert "nothing to purge" in exnode("audit", "purge", "--data", str(data)).stdout

    rotated = exnode("keys", "rotate", "--data", str(data))
    assert "new active key" in rotated.stdout
    published = json.loads((data / "keys" / "public-keys.json").read_text(encoding="utf-8"))["keys"]
    assert len(published) == 2
    local = exnode("audit", "verify", "--local", "--data", str(data), check=False)
    assert local.returncode == 0 and "OK" in local.stdout, local.stdout
    again = exnode("audit", "verify", "--file", str(before_rotation), "--data", str(data), check=False)
    assert again.returncode == 0, again.stdout

    config = data / "exnode.toml"  # sign often, so the restarted node's checkpoints show up in its export
    config.write_text(config.read_text(encoding="utf-8").replace("checkpoint_every = 1000", "checkpoint_every = 2"),
                      encoding="utf-8")
    restarted = Served(data)
    try:
        catalog_calls(restarted)
        after_rotation = tmp_path / "after.jsonl"
        restarted.cli("audit", "export", "--out", str(after_rotation), token=officer)
        assert restarted.cli("audit", "verify", token=officer).returncode == 0
    finally:
        assert restarted.stop() == 0
    lines = [json.loads(line) for line in after_rotation.read_text(encoding="utf-8").splitlines()]
    assert len({c["kid"] for c in lines if c["type"] == "checkpoint"}) == 2
    new_keys = data / "keys" / "public-keys.json"
    assert exnode("audit", "verify", "--file", str(after_rotation), "--keys", str(new_keys),
                  check=False).returncode == 0
    stale = exnode("audit", "verify", "--file", str(after_rotation), "--keys", str(old_keys), check=False)
    assert stale.returncode == 1 and "not a node key" in stale.stdout, stale.stdout

    with sqlite3.connect(data / "exnode.db") as database:
        database.execute("UPDATE audit_entries SET detail = ? WHERE sequence = 3", ("篡改的记录",))
    database.close()
    tampered = exnode("audit", "verify", "--local", "--data", str(data), check=False)
    assert tampered.returncode == 1
    assert "FAILED (database) at entry 3" in tampered.stdout and "entry 3 was altered" in tampered.stdout
    as_json = json.loads(exnode("audit", "verify", "--local", "--json", "--data", str(data), check=False).stdout)
    assert not as_json["ok"] and as_json["first_broken_sequence"] == 3
