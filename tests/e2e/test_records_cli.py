"""A data provider signs and sends records from JSON lines with the CLI alone (issue 15): keygen,
register, send; a send that broke off resumes with only what the node did not acknowledge."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import ADMIN_DEPT, Served, exnode, issue

RESOURCE = "311140001/000001"  # 城乡最低生活保障对象信息, provided by ADMIN_DEPT


def record(n: int, **changes: object) -> str:
    payload = {"姓名": "张三", "公民身份号码": "150102199001011234", "行政区划代码": "150102000000", "保障类别": "1",
               "户主公民身份号码": "150102199001011234", "家庭保障人口数": 2, "月保障金额": 800,
               "纳入保障日期": "2024-01-01"}
    return json.dumps({"id": f"DB-{n:06d}", "sequence": n, "payload": payload, **changes}, ensure_ascii=False)


def test_keygen_register_send_and_resume_sends_only_what_was_not_acknowledged(sample_node: Served,
                                                                              tmp_path: Path):
    keys = tmp_path / "provider-key"
    made = json.loads(exnode("records", "keygen", "--key-dir", str(keys), "--json").stdout)
    assert (keys / "provider-key.pem").stat().st_mode & 0o077 == 0
    again = exnode("records", "keygen", "--key-dir", str(keys), check=False)
    assert again.returncode == 2 and "exists" in again.stderr  # a provider keeps its key
    provider = issue(sample_node.data, ADMIN_DEPT, "catalog_admin,provider")
    registered = json.loads(sample_node.cli("records", "register", "--key-dir", str(keys), "--dept", ADMIN_DEPT,
                                            "--json", token=provider).stdout)
    assert registered["key_id"] == made["kid"]

    lines = [record(n) for n in range(1, 1101)]
    lines[899] = record(900, operation="REPLACE")  # the third batch (of 400) cannot be sent
    data = tmp_path / "records.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    send = ("records", "send", str(data), "--resource", RESOURCE, "--provider", ADMIN_DEPT, "--key-dir", str(keys),
            "--batch", "400", "--json")
    refused = sample_node.cli(*send, check=False, token=provider)
    assert refused.returncode == 1 and "line 900: operation" in refused.stderr and "nothing sent" in refused.stderr

    # a break after two acknowledged batches: the node refuses the third (a record it cannot take)
    lines[899] = record(900)
    lines[1000] = record(1001, payload={"姓名": "李四"})
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    broken = sample_node.cli(*send, check=False, token=provider)
    assert broken.returncode == 1 and "INVALID_ARGUMENT" in broken.stderr
    state = json.loads((tmp_path / "records.jsonl.sent.json").read_text(encoding="utf-8"))
    assert state["lines_acknowledged"] == 800

    lines[1000] = record(1001)
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    resumed = json.loads(sample_node.cli(*send, token=provider).stdout)
    assert (resumed["records"], resumed["skipped_as_sent"], resumed["accepted"], resumed["duplicates"]) == \
        (300, 800, 300, 0)
    nothing = json.loads(sample_node.cli(*send, token=provider).stdout)
    assert (nothing["records"], nothing["batches"]) == (0, 0)
    everything = json.loads(sample_node.cli(*send, "--restart", token=provider).stdout)
    assert (everything["accepted"], everything["duplicates"]) == (0, 1100)  # the node stores each id once


def test_another_file_of_the_same_name_is_checked_not_taken_as_a_replay(sample_node: Served, tmp_path: Path):
    """The batch id covers the lines' content: a new records.jsonl whose line 1 says something else about a
    stored id is refused as a conflict, never reported as 1 duplicate while nothing was stored."""
    keys = tmp_path / "provider-key"
    exnode("records", "keygen", "--key-dir", str(keys))
    provider = issue(sample_node.data, ADMIN_DEPT, "catalog_admin,provider")
    sample_node.cli("records", "register", "--key-dir", str(keys), "--dept", ADMIN_DEPT, token=provider)
    data = tmp_path / "records.jsonl"
    send = ("records", "send", str(data), "--resource", RESOURCE, "--provider", ADMIN_DEPT, "--key-dir", str(keys),
            "--json")
    data.write_text(record(1) + "\n", encoding="utf-8")
    first = json.loads(sample_node.cli(*send, token=provider).stdout)
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    same = json.loads(sample_node.cli(*send, "--restart", token=provider).stdout)
    assert (same["accepted"], same["duplicates"]) == (0, 1)  # the same lines: the stored batch, acknowledged

    changed_line = json.loads(record(1))
    changed_line["payload"]["姓名"] = "王芳"
    data.write_text(json.dumps(changed_line, ensure_ascii=False) + "\n", encoding="utf-8")
    changed = sample_node.cli(*send, "--restart", check=False, token=provider)
    assert changed.returncode == 1 and "INVALID_ARGUMENT" in changed.stderr and "DB-000001" in changed.stderr
    data.write_text(record(2) + "\n", encoding="utf-8")  # another record on the same line 1
    other = json.loads(sample_node.cli(*send, "--restart", token=provider).stdout)
    assert (other["accepted"], other["duplicates"]) == (1, 0)
