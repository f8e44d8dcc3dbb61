"""The command line as a new user meets it (issue 15): tables with headers, readable resource pages, the
README's export → import round trip, create and edit from a file, --version, a taken port in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.test_cli import EXNODE, Served, exnode


def test_version_names_the_installed_distribution():
    assert exnode("--version").stdout.strip().startswith("exnode 0.")


def test_list_prints_a_header_and_show_prints_dates_and_keywords_as_text(sample_node: Served):
    listing = sample_node.cli("catalog", "list", "-q", "低保").stdout.splitlines()
    assert listing[0].startswith("代码 code") and "名称 name" in listing[0]
    assert set(listing[1].replace(" ", "")) == {"─"}
    page = sample_node.cli("catalog", "show", "311140001/000001").stdout
    assert "关键字 keywords" in page and "低保、社会救助" in page and "['" not in page
    assert "纳入保障日期      D " in page and "D(0)" not in page


def test_export_then_import_upsert_round_trip_reports_unchanged_and_opens_drafts(sample_node: Served,
                                                                                tmp_path: Path):
    exported = tmp_path / "catalog.json"
    sample_node.cli("catalog", "export", "--format", "json", "--out", str(exported))
    plain = sample_node.cli("catalog", "import", str(exported), check=False)
    assert plain.returncode == 1 and "--upsert" in plain.stderr and "58 bad entries of 58" in plain.stderr
    again = sample_node.cli("catalog", "import", str(exported), "--upsert", "--json")
    assert json.loads(again.stdout) | {"file": ""} == {"file": "", "created": 0, "updated": 0, "published": 0,
                                                       "unchanged": 58}
    document = json.loads(exported.read_text(encoding="utf-8"))
    changed = next(r for r in document["resources"] if r["code"] == "311140001/000001")
    changed["summary"] += "（已更新）"
    exported.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    result = json.loads(sample_node.cli("catalog", "import", str(exported), "--upsert", "--json").stdout)
    assert (result["updated"], result["unchanged"]) == (1, 57)
    history = json.loads(sample_node.cli("catalog", "show", "311140001/000001", "--history", "--json").stdout)
    assert [(v["version"], v["state"]) for v in history["versions"]][-1] == (2, "DRAFT")


def test_create_from_toml_and_edit_from_the_json_of_show(sample_node: Served, tmp_path: Path):
    shown = json.loads(sample_node.cli("catalog", "show", "311140001/000001", "--json").stdout)
    meta = dict(shown["metadata"], code="311140001/000099", name="低保测试资源", related_codes=[])
    meta.pop("publish_date", None)
    toml = tmp_path / "new.toml"
    lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in meta.items() if key != "items"]
    for item in meta["items"]:
        lines += ["", "[[items]]", *(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in item.items())]
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    created = sample_node.cli("catalog", "create", str(toml))
    assert "created 311140001/000099 (version 1, DRAFT)" in created.stdout
    edited = tmp_path / "edit.json"
    document = json.loads(sample_node.cli("catalog", "show", "311140001/000099", "--json").stdout)
    document["metadata"]["summary"] = "改过的摘要"
    edited.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    sample_node.cli("catalog", "edit", str(edited))
    assert json.loads(sample_node.cli("catalog", "show", "311140001/000099", "--json").stdout
                      )["metadata"]["summary"] == "改过的摘要"
    bad = tmp_path / "bad.json"
    bad.write_text('{"code": "x"}', encoding="utf-8")
    refused = sample_node.cli("catalog", "create", str(bad), check=False)
    assert refused.returncode == 2 and "classification: is required" in refused.stderr and "Traceback" not in refused.stderr


def test_a_second_serve_on_a_taken_port_says_so_in_one_line(sample_node: Served):
    # at the default log level, as a person starts it (no alembic chatter before the line)
    second = subprocess.run([*EXNODE, "--log-format", "text", "serve", "--data",
                             str(sample_node.data), "--listen", sample_node.address, "--metrics-listen",
                             "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, second.stderr
    assert f"server.listen {sample_node.address}: Address already in use" in lines[0]


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """``exnode ARGS`` with stderr on a pseudo-terminal (as a person runs it): exit status and what the
    terminal received."""
    import os
    import pty

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([*EXNODE, *args], stdout=subprocess.PIPE, stderr=terminal,
                                   env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"})
        os.close(terminal)
        received = bytearray()
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other end closed: the process is done with its terminal
                break
            if not chunk:
                break
            received += chunk
        process.communicate(timeout=120)
        return process.returncode, received.decode(errors="replace")
    finally:
        os.close(controller)


def test_backup_and_verify_draw_bars_on_a_terminal_and_none_under_json_or_a_pipe(tmp_path: Path):
    data = tmp_path / "node"
    exnode("init", "--data", str(data), "--sample", "--dev")
    code, shown = _on_a_terminal("backup", "--data", str(data), str(tmp_path / "b1"))
    assert code == 0 and "bytes hashed (SHA-256)" in shown and "files copied" in shown, shown
    code, shown = _on_a_terminal("restore", "--verify-only", str(tmp_path / "b1"))
    assert code == 0 and "bytes verified (SHA-256)" in shown, shown
    code, shown = _on_a_terminal("backup", "--data", str(data), str(tmp_path / "b2"), "--json")
    assert code == 0 and "SHA-256" not in shown, shown
    piped = exnode("backup", "--data", str(data), str(tmp_path / "b3"))
    assert "SHA-256" not in piped.stderr and "backed up" in piped.stdout


def test_import_draws_a_bar_for_its_entries_on_a_terminal(sample_node: Served, tmp_path: Path):
    exported = tmp_path / "catalog.json"
    sample_node.cli("catalog", "export", "--format", "json", "--out", str(exported))
    code, shown = _on_a_terminal("catalog", "import", str(exported), "--upsert", "--server", sample_node.address,
                                 "--token", sample_node.admin_token)
    assert code == 0 and "checking catalog.json" in shown, shown
