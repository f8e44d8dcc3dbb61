"""A resumed pull publishes only what verifies: batches staged by an interrupted run are checked again
against their signatures, whatever fails is discarded and fetched again, and the published directory
re-verifies offline (``exnode pull verify``) across the streams the pull arrived in."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.cli import main as cli_main
from node.clients.pull import STAGING, PullOutcome, PullProblem, pull
from node.clients.pull_evidence import EvidenceProblem, batch_file_name, verify_published
from security.keys import public_keys_document
from tests.integration.grpc_node import RunningNode
from tests.integration.test_pull import PROVIDER, BreakOff, Provider, _node, caller, canonical, lines, trusted

RECORDS = 14  # batches of 4: 4 + 4 + 4 + 2
STAGED = 3  # the interrupted run stages batch-000000 … batch-000002


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    running = _node(tmp_path)
    yield running
    running.close()


def interrupted(node: RunningNode, out: Path, after: int | None = STAGED) -> list[bytes]:
    """Records sent, and a pull of them broken off after ``after`` batches (None: before the manifest),
    staged, not published."""
    sent = canonical(Provider(node).send(RECORDS))
    with pytest.raises(PullProblem, match="stream ended before the manifest"):
        pull(BreakOff(node, after), trusted(node), out)
    after = 4 if after is None else after
    assert sorted(p.name for p in (out / STAGING).glob("batch-*")) == [batch_file_name(n) for n in range(after)]
    return sent


def staged(out: Path, number: int) -> Path:
    return out / STAGING / batch_file_name(number)


def edit_state(out: Path, change: Callable[[dict], None]) -> None:
    path = out / STAGING / "state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    change(state)
    path.write_text(json.dumps(state), encoding="utf-8")


def flip_byte(path: Path, at: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def swap(a: Path, b: Path) -> None:
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)


def assert_published_equals_a_clean_pull(node: RunningNode, outcome: PullOutcome, sent: list[bytes],
                                         tmp_path: Path) -> None:
    verified = verify_published(outcome.directory, node.config.node.id, node.node.keys.public)
    assert (verified.records, verified.batches) == (RECORDS, 4)
    assert (outcome.records, outcome.batches) == (RECORDS, 4)
    assert sorted(p.name for p in outcome.directory.iterdir()) == [*(batch_file_name(n) for n in range(4)),
                                                                   "manifest.json"]
    clean = pull(caller(node), trusted(node), tmp_path / "clean", replay=True)
    assert lines(outcome.directory) == lines(clean.directory) == sent
    assert not (outcome.directory.parent / STAGING).exists()


MUTATIONS: dict[str, tuple[Callable[[Path], None], str | list[str], bool]] = {
    # name: (what is done to the staging directory, the line(s) reported, whether staged batches were kept)
    "a name changed": (lambda out: staged(out, 1).write_bytes(
        staged(out, 1).read_bytes().replace("张5".encode(), "李5".encode())),
        r"^staged batch 1 \(batch-000001\.jsonl\): the records hash to \w+, the signed root is \w+ .*: "
        r"discarded with the 1 staged batch after it, fetching again from the node$", True),
    "one byte flipped in the last staged batch": (lambda out: flip_byte(staged(out, 2)),
                                                  r"^staged batch 2 \(batch-000002\.jsonl\): the records hash to .*: "
                                                  r"discarded, fetching again", True),
    "a file cut in the middle of a line": (lambda out: staged(out, 1).write_bytes(staged(out, 1).read_bytes()[:100]),
                                           r"^staged batch 1 \(batch-000001\.jsonl\): does not end with a newline",
                                           True),
    "a file's last record cut off": (lambda out: staged(out, 1).write_bytes(
        b"".join(staged(out, 1).read_bytes().splitlines(keepends=True)[:-1])),
        r"^staged batch 1 \(batch-000001\.jsonl\): holds 3 records, its signature is for 4", True),
    "a file deleted": (lambda out: staged(out, 1).unlink(),
                       r"^staged batch 1 \(batch-000001\.jsonl\): is missing: discarded with the 1", True),
    "two files' contents swapped": (lambda out: swap(staged(out, 0), staged(out, 1)),
                                    r"^staged batch 0 \(batch-000000\.jsonl\): the records hash to .*discarded with "
                                    r"the 2 staged batches after it", False),
    "a file renamed": (lambda out: staged(out, 2).rename(staged(out, 3)),
                       [r"^staged batch 2 \(batch-000002\.jsonl\): is missing: discarded, fetching again",
                        r"^batch-000003\.jsonl in .*: not part of the staged pull, removed$"], True),
    "an extra batch file": (lambda out: staged(out, 7).write_bytes(staged(out, 0).read_bytes()),
                            r"^batch-000007\.jsonl in .*: not part of the staged pull, removed$", True),
    "a stray file": (lambda out: (out / STAGING / "notes.txt").write_text("李四"),
                     r"^notes\.txt in .*: not part of the staged pull, removed$", True),
    "a count edited in state.json": (lambda out: edit_state(out, lambda s: s["batches"][1].update(record_count=3)),
                                     r"^staged batch 1 \(batch-000001\.jsonl\): holds 4 records, its signature is "
                                     r"for 3", True),
    "a cursor edited in state.json": (lambda out: edit_state(out, lambda s: s["batches"][1].update(
        to_cursor=s["batches"][2]["to_cursor"])),
        r"^staged batch 1 \(batch-000001\.jsonl\): the signature does not verify with key", True),
    "entries reordered in state.json": (lambda out: edit_state(out, lambda s: s["batches"].reverse()),
                                        r"^staged batch 0 \(batch-000002\.jsonl\): its entry names file "
                                        r"batch-000002\.jsonl, batch 0 is batch-000000\.jsonl", False),
    "the platform edited in state.json": (lambda out: edit_state(out, lambda s: s.update(platform="someone/node")),
                                          r"^staged batch 0 \(batch-000000\.jsonl\): does not start where the pull "
                                          r"started .*: discarded with the 2 staged batches after it",
                                          False),
    "the batch list replaced in state.json": (lambda out: edit_state(out, lambda s: s.update(batches={"0": 1})),
                                              r"^batch-000000\.jsonl, batch-000001\.jsonl, batch-000002\.jsonl in .*: "
                                              r"not part of the staged pull, removed$", False),
    "state.json cut short": (lambda out: (out / STAGING / "state.json").write_text('{"since": "", "bat'),
                             r"state\.json is unreadable \(.*\): the 3 staged batch files are discarded", False),
    "state.json deleted": (lambda out: (out / STAGING / "state.json").unlink(),
                           r"state\.json is missing: the 3 staged batch files are discarded", False),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_resumed_pull_publishes_only_staged_batches_that_verify_again(node, tmp_path, mutation):
    change, reported, kept = MUTATIONS[mutation]
    out = tmp_path / "out"
    sent = interrupted(node, out)
    change(out)
    lines_reported: list[str] = []
    outcome = pull(caller(node), trusted(node), out, report=lines_reported.append)
    assert_published_equals_a_clean_pull(node, outcome, sent, tmp_path)
    assert outcome.resumed is kept
    patterns = [reported] if isinstance(reported, str) else reported
    assert len(lines_reported) == len(patterns), lines_reported
    for pattern, line in zip(patterns, lines_reported, strict=True):
        assert re.search(pattern, line), line


def test_an_untouched_staging_resumes_without_discarding_and_the_chain_verifies(node, tmp_path):
    out = tmp_path / "out"
    sent = interrupted(node, out)
    reported: list[str] = []
    outcome = pull(caller(node), trusted(node), out, report=reported.append)
    assert reported == [] and outcome.resumed
    assert_published_equals_a_clean_pull(node, outcome, sent, tmp_path)
    verified = verify_published(outcome.directory, node.config.node.id, node.node.keys.public)
    assert verified.streams == 2  # batches 0-2 from the first stream, batch 3 and the manifest from the second


def test_a_pull_broken_off_after_its_last_batch_publishes_with_the_empty_final_stream_manifest(node, tmp_path):
    out = tmp_path / "out"
    sent = interrupted(node, out, after=None)
    outcome = pull(caller(node), trusted(node), out)
    manifest = json.loads((outcome.directory / "manifest.json").read_text())["manifest"]
    assert manifest["batch_count"] == 0 and manifest["record_count"] == 0
    assert_published_equals_a_clean_pull(node, outcome, sent, tmp_path)


def test_exnode_pull_says_what_it_discarded_and_exnode_pull_verify_checks_the_published_chain(node, tmp_path,
                                                                                              capsys):
    out = tmp_path / "out"
    sent = interrupted(node, out)
    staged(out, 1).write_bytes(staged(out, 1).read_bytes().replace("张5".encode(), "李5".encode()))
    keys = tmp_path / "public-keys.json"
    keys.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)))
    token = node.token(PROVIDER, ("platform",))
    assert cli_main(["pull", "--server", node.address, "--token", token, "--out", str(out), "--keys", str(keys),
                     "--json"]) == 0
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("exnode: pull: staged batch 1 (batch-000001.jsonl): the records hash to ")
    assert captured.err.endswith(": discarded with the 1 staged batch after it, fetching again from the node\n")
    report = json.loads(captured.out)
    assert set(report) == {"next_cursor", "directory", "records", "batches", "resumed"}
    assert (report["records"], report["batches"], report["resumed"]) == (RECORDS, 4, True)
    directory = Path(report["directory"])
    assert lines(directory) == sent

    assert cli_main(["pull", "verify", str(directory), "--keys", str(keys)]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith(f"pull verify: OK ({directory}): 14 records in 4 batches (2 streams)")
    assert report["next_cursor"] in summary and summary.count("\n") == 1

    published = directory / batch_file_name(2)
    published.write_bytes(published.read_bytes().replace("张9".encode(), "李9".encode()))
    assert cli_main(["pull", "verify", str(directory), "--keys", str(keys)]) == 1
    failure = capsys.readouterr().out
    assert failure.startswith(f"pull verify: FAILED ({directory}): batch 2 (batch-000002.jsonl): the records hash")
    assert failure.count("\n") == 1


def _drop_last_entry(directory: Path) -> None:
    path = directory / "manifest.json"
    document = json.loads(path.read_text())
    (directory / document["batches"].pop(1)["file"]).unlink()
    path.write_text(json.dumps(document))


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        path = directory / "manifest.json"
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document))
    return edit


PUBLISHED_MUTATIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a byte flipped": (lambda d: flip_byte(d / batch_file_name(1)), r"batch 1 \(batch-000001\.jsonl\): the records"),
    "a file deleted": (lambda d: (d / batch_file_name(3)).unlink(), r"batch 3 \(batch-000003\.jsonl\): is missing"),
    "a file truncated": (lambda d: (d / batch_file_name(0)).write_bytes(b""),
                         r"batch 0 \(batch-000000\.jsonl\): holds 0 records, its signature is for 4"),
    "two files swapped": (lambda d: swap(d / batch_file_name(0), d / batch_file_name(1)),
                          r"batch 0 \(batch-000000\.jsonl\): the records hash to"),
    "an extra file": (lambda d: (d / "batch-000004.jsonl").write_bytes(b"{}\n"),
                      r"batch-000004\.jsonl is not part of the pull"),
    "a batch and its entry removed": (_drop_last_entry, r"batch 1 \(batch-000002\.jsonl\): does not start where "
                                                        r"batch 0 ended"),
    "a batch signature edited": (_edit_manifest(lambda d: d["batches"][2].update(signature="00" * 64)),
                                 r"batch 2 \(batch-000002\.jsonl\): the signature does not verify"),
    "the manifest's count edited": (_edit_manifest(lambda d: d["manifest"].update(record_count=15)),
                                    r"manifest: says 15 records, its 4 batches hold 14"),
    "the record count edited": (_edit_manifest(lambda d: d.update(record_count=13)),
                                r"manifest\.json: says 13 records, its batches hold 14"),
    "manifest.json deleted": (lambda d: (d / "manifest.json").unlink(), r"manifest\.json is missing"),
}


@pytest.mark.parametrize("mutation", list(PUBLISHED_MUTATIONS))
def test_pull_verify_names_the_first_thing_in_a_published_pull_that_does_not_verify(node, tmp_path, mutation):
    change, problem = PUBLISHED_MUTATIONS[mutation]
    Provider(node).send(RECORDS)
    outcome = pull(caller(node), trusted(node), tmp_path / "out")
    verify_published(outcome.directory, node.config.node.id, node.node.keys.public)
    change(outcome.directory)
    with pytest.raises(EvidenceProblem, match=problem):
        verify_published(outcome.directory, node.config.node.id, node.node.keys.public)


def test_pull_verify_refuses_the_keys_of_another_node(node, tmp_path, capsys):
    Provider(node).send(5)
    outcome = pull(caller(node), trusted(node), tmp_path / "out")
    document = public_keys_document(node.node.keys, node.config.node.id)
    keys = tmp_path / "other-keys.json"
    keys.write_text(json.dumps({**document, "node_id": "someone-else"}))
    assert cli_main(["pull", "verify", str(outcome.directory), "--keys", str(keys)]) == 1
    assert "pulled from node" in capsys.readouterr().out
    assert cli_main(["pull", "verify", str(outcome.directory), "--keys", str(tmp_path / "missing.json")]) == 2
    assert "--keys" in capsys.readouterr().err
