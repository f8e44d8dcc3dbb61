"""The node as a user meets it: `exnode init --sample`, `exnode serve`, and the catalog CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXNODE = [sys.executable, "-m", "node.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exnode(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*EXNODE, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"exnode {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


ADMIN_DEPT = "11100000MB01284764"  # 民政部社会救助司, a provider of the sample catalog


class Served:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.admin_token = issue(data, ADMIN_DEPT, "catalog_admin")
        self.address = f"127.0.0.1:{free_port()}"
        # serve logs a JSON line per RPC on stderr: a file, not an unread pipe that would fill and stall it
        self.log = data.parent / "serve.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*EXNODE, "serve", "--data", str(data), "--listen", self.address,
                 "--metrics-listen", f"127.0.0.1:{free_port()}"],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exnode serve died: {self.log.read_text(errors='replace')[-3000:]}")
            if exnode("catalog", "list", "--server", self.address, "--limit", "1", "--token", self.admin_token,
                      check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError("exnode serve did not answer within 60 s")

    def cli(self, *args: str, check: bool = True, token: str | None = None) -> subprocess.CompletedProcess:
        """A client command against this node, as a catalog_admin of ADMIN_DEPT unless told otherwise."""
        token = self.admin_token if token is None else token
        return exnode(*args, "--server", self.address, check=check, env={"EXNODE_TOKEN": token})

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def issue(data: Path, dept: str, roles: str) -> str:
    return exnode("token", "issue", "--data", str(data), "--dept", dept, "--roles", roles).stdout.strip()


@pytest.fixture
def sample_node(tmp_path: Path) -> Iterator[Served]:
    exnode("init", "--data", str(tmp_path / "node"), "--sample", "--dev")
    served = Served(tmp_path / "node")
    yield served
    if served.process.poll() is None:
        served.stop()


def test_sample_node_lists_its_catalog_as_json(sample_node: Served):
    listing = json.loads(sample_node.cli("catalog", "list", "--json").stdout)
    assert listing["total_size"] >= 40 and len(listing["resources"]) == listing["total_size"]
    assert all(r["status"] == "PUBLISHED" for r in listing["resources"])
    names = " ".join(r["metadata"]["name"] for r in listing["resources"])
    for area in ("低保", "特困", "养老", "社会组织", "婚姻", "殡葬", "地名", "志愿", "社会工作", "儿童"):
        assert area in names, area


def test_search_with_chinese_words(sample_node: Served):
    found = json.loads(sample_node.cli("catalog", "list", "--json", "-q", "婚姻登记").stdout)
    assert found["resources"] and all("婚姻登记" in json.dumps(r, ensure_ascii=False) for r in found["resources"])


def test_show_publish_and_retire_from_the_cli(sample_node: Served):
    code = json.loads(sample_node.cli("catalog", "list", "--json", "--limit", "1", "--provider", ADMIN_DEPT
                                      ).stdout)["resources"][0]["code"]
    shown = json.loads(sample_node.cli("catalog", "show", code, "--json").stdout)
    assert shown["code"] == code and shown["metadata"]["items"]
    again = sample_node.cli("catalog", "publish", code, check=False)
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr and "Traceback" not in again.stderr
    retired = json.loads(sample_node.cli("catalog", "retire", code, "--json").stdout)
    assert retired["status"] == "RETIRED"


def test_import_of_a_file_with_bad_entries_changes_nothing_and_names_each(sample_node: Served, tmp_path: Path):
    before = json.loads(sample_node.cli("catalog", "list", "--json", "--limit", "1").stdout)["total_size"]
    entries = json.loads(sample_node.cli("catalog", "export", "--format", "json").stdout)["resources"][:3]
    for index, entry in enumerate(entries):
        entry["code"] = entry["code"].split("/")[0] + f"/9{index:05d}"
        entry.pop("related_codes", None)
    entries[1]["provider_code"] = entries[1]["provider_code"][:-1] + (
        "0" if entries[1]["provider_code"][-1] != "0" else "1")
    entries[2]["update_cycle"] = "SOMETIMES"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"resources": entries}, ensure_ascii=False), encoding="utf-8")
    result = sample_node.cli("catalog", "import", str(path), check=False)
    assert result.returncode == 1
    assert "resources[1]" in result.stderr and "provider_code" in result.stderr
    assert "resources[2]" in result.stderr and "update_cycle" in result.stderr
    assert "resources[0]" not in result.stderr
    after = json.loads(sample_node.cli("catalog", "list", "--json", "--limit", "1").stdout)["total_size"]
    assert after == before


def test_xml_export_imports_into_a_fresh_node(sample_node: Served, tmp_path: Path):
    """One department's part of the catalog, exported as XML, imports into a fresh node unchanged."""
    from lxml import etree

    exported = tmp_path / "catalog.xml"
    sample_node.cli("catalog", "export", "--format", "xml", "--out", str(exported))
    assert exported.read_bytes().startswith(b"<?xml")
    ns = {"c": "urn:exnode:catalog:v1"}
    tree = etree.parse(str(exported))
    for element in tree.getroot().findall("c:resource", ns):
        if element.findtext("c:provider_code", namespaces=ns) != ADMIN_DEPT:
            tree.getroot().remove(element)
        for related in element.findall("c:related_codes", ns):
            element.remove(related)
    ours = tmp_path / "ours.xml"
    tree.write(str(ours), xml_declaration=True, encoding="UTF-8")
    exnode("init", "--data", str(tmp_path / "fresh"), "--dev")
    fresh = Served(tmp_path / "fresh")
    try:
        imported = json.loads(fresh.cli("catalog", "import", str(ours), "--publish", "--json").stdout)
        source = json.loads(sample_node.cli("catalog", "list", "--json", "--provider", ADMIN_DEPT).stdout)["resources"]
        copy = json.loads(fresh.cli("catalog", "list", "--json").stdout)["resources"]
        assert imported["created"] == len(source) > 3
        strip = [{k: v for k, v in r["metadata"].items() if k != "related_codes"} for r in source]
        assert [r["metadata"] for r in copy] == strip
    finally:
        fresh.stop()


def test_hostile_xml_import_is_refused_before_parsing(sample_node: Served, tmp_path: Path):
    path = tmp_path / "laughs.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                    '<catalog xmlns="urn:exnode:catalog:v1" version="1">&lol2;</catalog>')
    result = sample_node.cli("catalog", "import", str(path), check=False)
    assert result.returncode == 1 and "DTD" in result.stderr.upper()


def test_sigterm_shuts_the_node_down_cleanly(sample_node: Served):
    assert sample_node.stop() == 0


def test_errors_are_one_line_and_usage_errors_exit_2(tmp_path: Path):
    unreachable = exnode("catalog", "list", "--server", f"127.0.0.1:{free_port()}", check=False)
    assert unreachable.returncode == 1 and "UNAVAILABLE" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
    assert exnode("catalog", "frobnicate", check=False).returncode == 2
    missing = exnode("catalog", "import", str(tmp_path / "nope.json"), "--server", "127.0.0.1:1", check=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_init_is_repeatable_and_keeps_the_key(tmp_path: Path):
    exnode("init", "--data", str(tmp_path / "n"), "--sample")
    ring = (tmp_path / "n" / "keys" / "keyring.json").read_text()
    second = exnode("init", "--data", str(tmp_path / "n"), "--sample")
    assert "nothing loaded" in second.stdout
    assert (tmp_path / "n" / "keys" / "keyring.json").read_text() == ring
    assert oct((tmp_path / "n" / "keys").stat().st_mode & 0o777) == "0o700"


def test_a_development_node_runs_for_the_sample_provider_unless_told_otherwise(tmp_path: Path):
    """The README's quick start pulls as the platform of 11100000MB01284764: init --dev makes that the
    node's department, so the ministry pull works on a `make run` node."""
    from node.config import load_config

    dev = exnode("init", "--data", str(tmp_path / "dev"), "--dev")
    assert f"node.department_code = {ADMIN_DEPT}" in dev.stdout
    assert load_config(tmp_path / "dev", environ={}).node.department_code == ADMIN_DEPT
    exnode("init", "--data", str(tmp_path / "other"), "--dev", "--department-code", "11150100011627354Q")
    assert load_config(tmp_path / "other", environ={}).node.department_code == "11150100011627354Q"
    exnode("init", "--data", str(tmp_path / "prod"))
    assert load_config(tmp_path / "prod", environ={}).node.department_code == ""


def test_serve_with_a_bad_config_names_the_key(tmp_path: Path):
    exnode("init", "--data", str(tmp_path / "n"))
    config = tmp_path / "n" / "exnode.toml"
    config.write_text(config.read_text().replace("[server]", "[server]\nlisten_port = 1"))
    result = exnode("serve", "--data", str(tmp_path / "n"), check=False)
    assert result.returncode == 1 and "server.listen_port" in result.stderr and "Traceback" not in result.stderr
