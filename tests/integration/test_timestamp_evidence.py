"""RFC 3161 evidence checked offline by the party that holds a signed statement (issue 17 §4): a verdict
file gets its timestamp from the node (``exnode verdict stamp``, KeysService.GetTimestamp) and ``exnode
verdict verify --tsa-roots`` checks the token's signature, the TSA's chain to the trusted roots, the message
imprint through the inclusion proof, and refuses a token replayed from another statement or dated before
the verdict was signed. The TSA is real (``openssl ts -reply`` behind HTTP, tests/integration/tsa_server)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2_grpc, keys_pb2, keys_pb2_grpc, query_pb2_grpc

from catalog.records import Record
from node.cli import main
from node.pipeline import provider_batch
from security.keys import public_keys_document
from security.timestamps import Evidence
from tests.conftest import FixedClock
from tests.fault.support import CONSUMER, LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode
from tests.integration.test_exchange_relay import register
from tests.integration.test_query_verify import WANG, claim, demand
from tests.integration.test_timestamps import node_with_tsa
from tests.integration.tls_servers import OpenSslCA
from tests.integration.tsa_server import OpenSslTsa

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> OpenSslCA:
    return OpenSslCA(tmp_path_factory.mktemp("tsa-ca"), "exnode test TSA root")


@pytest.fixture(scope="module")
def tsa(ca: OpenSslCA) -> Iterator[OpenSslTsa]:
    server = OpenSslTsa(ca)
    yield server
    server.close()


def verifying_node(tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA,
                   clock: object | None = None) -> RunningNode:
    running = node_with_tsa(tmp_path, database_url, tsa, ca, clock=clock)
    key = Key()
    register(running, key)
    record = low_income_record(1)
    provider = exchange_pb2_grpc.ExchangeServiceStub(running.channel_as(PROVIDER, ["provider"]))
    provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [Record(
        record.id, record.sequence, record.operation, {**record.payload, "公民身份号码": WANG, "姓名": "王芳"})], key)))
    demand(running, "VERIFY", ("姓名",))
    return running


@pytest.fixture
def node(tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA) -> Iterator[RunningNode]:
    running = verifying_node(tmp_path, database_url, tsa, ca)
    yield running
    running.close()


def verdict_file(node: RunningNode, path: Path, name: str = "王芳") -> Path:
    verdict = claim(query_pb2_grpc.QueryServiceStub(node.channel_as(CONSUMER, ["consumer"])), 姓名=name)
    path.write_text(json.dumps({"verdict": json.loads(verdict.document),
                                "signature": base64.b64encode(verdict.signature).decode(),
                                "request": json.loads(verdict.request)}, ensure_ascii=False), encoding="utf-8")
    return path


def keys_file(node: RunningNode, tmp_path: Path) -> Path:
    path = tmp_path / "public-keys.json"
    path.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)), encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stamp(node: RunningNode, file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return cli(capsys, "verdict", "stamp", str(file), "--data", str(node.config.data_dir), "--server", node.address,
               "--token", node.token(CONSUMER, ["consumer"]))


def verify(file: Path, keys: Path, roots: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return cli(capsys, "verdict", "verify", str(file), "--keys", str(keys), "--tsa-roots", str(roots))


def test_a_stamped_verdict_verifies_offline_with_the_tsa_roots_and_a_replayed_or_foreign_token_is_refused(
        node: RunningNode, tsa: OpenSslTsa, ca: OpenSslCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    first, second = verdict_file(node, tmp_path / "v1.json"), verdict_file(node, tmp_path / "v2.json", "李娜")
    keys = keys_file(node, tmp_path)
    code, _, err = stamp(node, first, capsys)
    assert code != 0 and "waits for its timestamp" in err, err  # UNAVAILABLE until the worker's round
    code, _, err = verify(first, keys, ca.cert, capsys)
    assert code == 1 and "the file has none" in err

    assert node.node.timestamps.stamp_once() == 2 + 2  # the two verdicts with the ingested batch and the day's roots
    for file in (first, second):
        code, out, err = stamp(node, file, capsys)
        assert code == 0, err
        code, out, err = verify(file, keys, ca.cert, capsys)
        assert code == 0 and "RFC 3161 timestamp" in out, err

    data = json.loads(first.read_text(encoding="utf-8"))
    other = json.loads(second.read_text(encoding="utf-8"))
    replayed = tmp_path / "replayed.json"
    replayed.write_text(json.dumps({**data, "timestamp": other["timestamp"]}), encoding="utf-8")
    code, _, err = verify(replayed, keys, ca.cert, capsys)
    assert code == 1 and "the evidence is for another statement" in err, err
    forged = {**other["timestamp"], "digest": data["timestamp"]["digest"], "index": other["timestamp"]["index"]}
    replayed.write_text(json.dumps({**data, "timestamp": forged}), encoding="utf-8")
    code, _, err = verify(replayed, keys, ca.cert, capsys)
    assert code == 1 and "over other data" in err, err  # the proof leads to another root than the token's

    untrusted = OpenSslCA(tmp_path / "other-ca", "some other TSA root")
    code, _, err = verify(first, keys, untrusted.cert, capsys)
    assert code == 1 and "certificate chain does not verify" in err, err

    evidence = Evidence.from_dict(data["timestamp"])
    broken = bytearray(evidence.token)
    broken[-8] ^= 0xFF  # inside the TSA's signature
    replayed.write_text(json.dumps({**data, "timestamp": {**data["timestamp"], "token": base64
                                                          .b64encode(bytes(broken)).decode()}}), encoding="utf-8")
    code, _, err = verify(replayed, keys, ca.cert, capsys)
    assert code == 1 and "timestamp" in err and "Traceback" not in err, err


def test_a_token_dated_before_the_verdict_was_signed_is_refused_as_replayed(
        tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA, capsys: pytest.CaptureFixture[str]):
    """A node whose clock runs a day ahead signs a verdict 'tomorrow'; the TSA's token is dated today: a
    token older than the statement cannot be its own."""
    running = verifying_node(tmp_path, database_url, tsa, ca,
                             clock=FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    try:
        file = verdict_file(running, tmp_path / "v.json")
        running.node.timestamps.stamp_once()
        assert stamp(running, file, capsys)[0] == 0
        code, _, err = verify(file, keys_file(running, tmp_path), ca.cert, capsys)
        assert code == 1 and "a replayed token" in err and "before the statement" in err, err
    finally:
        running.close()


def test_get_timestamp_names_bad_arguments_and_unknown_statements(node: RunningNode):
    stub = keys_pb2_grpc.KeysServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    for request, code, words in [
        (keys_pb2.GetTimestampRequest(kind="letter", ref="x"), grpc.StatusCode.INVALID_ARGUMENT, "kind"),
        (keys_pb2.GetTimestampRequest(kind="verdict", ref=""), grpc.StatusCode.INVALID_ARGUMENT, "ref"),
        (keys_pb2.GetTimestampRequest(kind="verdict", ref="00" * 32), grpc.StatusCode.NOT_FOUND, "verdict"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetTimestamp(request)
        assert caught.value.code() is code and words in caught.value.details(), caught.value.details()


def test_a_pull_s_manifest_timestamp_is_fetched_checked_offline_and_kept_and_a_foreign_one_is_refused(
        node: RunningNode, ca: OpenSslCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """``exnode pull --tsa-roots``: the manifest waits for the TSA's round (said, exit 0); ``exnode pull stamp``
    then fetches, checks and keeps timestamp.json; ``exnode pull verify --tsa-roots`` checks it offline and
    refuses the evidence of another pull's manifest."""
    demand(node)  # a copy grant: the consumer's platform pulls the record
    keys = keys_file(node, tmp_path)
    base = ["pull", "--server", node.address, "--token", node.token(CONSUMER, ["platform"]),
            "--data", str(node.config.data_dir)]
    pulls, since = [], ""
    for n in (1, 2):  # the second from where the first ended: another manifest
        code, out, err = cli(capsys, *base, "--out", str(tmp_path / f"out{n}"), "--keys", str(keys), "--since", since,
                             "--tsa-roots", str(ca.cert), "--json")
        assert code == 0, err
        assert json.loads(out)["timestamp"] is None and "waits for its timestamp" in err and "pull stamp" in err
        pulls.append(Path(json.loads(out)["directory"]))
        since = json.loads(out)["next_cursor"]
    code, _, err = cli(capsys, "pull", "verify", str(pulls[0]), "--keys", str(keys), "--tsa-roots", str(ca.cert))
    assert code == 1 and "the pull has no timestamp" in _ + err

    node.node.timestamps.stamp_once()
    after = ["--server", node.address, "--token", node.token(CONSUMER, ["platform"]), "--data",
             str(node.config.data_dir)]
    for directory, before, given_after in ((pulls[0], base, []), (pulls[1], ["pull"], after)):
        # the node and the token before `stamp` or after it, as the README writes `pull stamp DIR --token T`
        code, out, err = cli(capsys, *before, "stamp", str(directory), "--tsa-roots", str(ca.cert), *given_after)
        assert code == 0 and "timestamp.json" in out, out + err
        code, out, err = cli(capsys, "pull", "verify", str(directory), "--keys", str(keys), "--tsa-roots",
                             str(ca.cert))
        assert code == 0 and "RFC 3161 timestamp" in out, out + err

    (pulls[0] / "timestamp.json").write_bytes((pulls[1] / "timestamp.json").read_bytes())
    code, out, err = cli(capsys, "pull", "verify", str(pulls[0]), "--keys", str(keys), "--tsa-roots", str(ca.cert))
    assert code == 1 and "the evidence is for another statement" in out, out + err
    untrusted = OpenSslCA(tmp_path / "other-ca", "some other TSA root")
    code, out, err = cli(capsys, "pull", "verify", str(pulls[1]), "--keys", str(keys), "--tsa-roots",
                         str(untrusted.cert))
    assert code == 1 and "certificate chain does not verify" in out, out + err


def test_a_token_dated_before_the_pull_manifest_was_signed_is_refused_as_replayed(
        tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA, capsys: pytest.CaptureFixture[str]):
    """The manifest signs its time (version 2); a node whose clock runs a day ahead signs it 'tomorrow', and
    the TSA's token, dated today, cannot be its own: ``exnode pull stamp`` keeps nothing, naming it."""
    running = verifying_node(tmp_path, database_url, tsa, ca,
                             clock=FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    try:
        demand(running)
        keys = keys_file(running, tmp_path)
        base = ["pull", "--server", running.address, "--token", running.token(CONSUMER, ["platform"]),
                "--data", str(running.config.data_dir)]
        code, out, err = cli(capsys, *base, "--out", str(tmp_path / "out"), "--keys", str(keys), "--json")
        assert code == 0, err
        directory = Path(json.loads(out)["directory"])
        assert json.loads((directory / "manifest.json").read_text())["manifest"]["version"] == 2
        running.node.timestamps.stamp_once()
        code, out, err = cli(capsys, *base, "stamp", str(directory), "--tsa-roots", str(ca.cert))
        assert code == 1 and "a replayed token" in out + err and "before the statement" in out + err, out + err
        assert not (directory / "timestamp.json").exists()
    finally:
        running.close()


def test_audit_verify_against_a_node_checks_every_checkpoint_s_timestamp_here(
        node: RunningNode, ca: OpenSslCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    keys = keys_file(node, tmp_path)
    officer = ["--server", node.address, "--token", node.token(PROVIDER, ["security_officer"], subject="officer"),
               "--data", str(node.config.data_dir), "--keys", str(keys)]
    node.node.audit_writer.checkpoint_if_due(force=True)
    code, out, err = cli(capsys, "audit", "verify", *officer, "--tsa-roots", str(ca.cert), "--json")
    assert code == 0, out + err
    waiting = json.loads(out)
    assert waiting["timestamps_checked"] == 0 and waiting["timestamps_waiting"] >= 1

    node.node.timestamps.stamp_once()
    code, out, err = cli(capsys, "audit", "verify", *officer, "--tsa-roots", str(ca.cert))
    assert code == 0 and "checkpoint RFC 3161 timestamps verify offline" in out, out + err
    assert f"{waiting['timestamps_waiting']} checkpoint RFC 3161" in out, out

    untrusted = OpenSslCA(tmp_path / "other-ca", "some other TSA root")
    code, out, err = cli(capsys, "audit", "verify", *officer, "--tsa-roots", str(untrusted.cert))
    assert code == 1 and "timestamp FAILED: checkpoint" in err and "certificate chain does not verify" in err, err


def test_an_exported_trail_verifies_offline_with_the_timestamps_audit_stamp_kept_beside_it(
        node: RunningNode, ca: OpenSslCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """`exnode audit export`, `exnode audit stamp FILE`, then `exnode audit verify --file FILE --tsa-roots`
    with no node: the checkpoints' tokens check offline; another checkpoint's evidence, an edited token or an
    untrusted TSA fails naming the checkpoint; a missing timestamps file says to run audit stamp."""
    keys = keys_file(node, tmp_path)
    officer = ["--server", node.address, "--token", node.token(PROVIDER, ["security_officer"], subject="officer")]
    for _ in range(2):  # two checkpoints (an audited call between them), both stamped
        node.node.audit_writer.checkpoint_if_due(force=True)
        node.node.timestamps.stamp_once()
        assert cli(capsys, "audit", "verify", *officer)[0] == 0
    export = tmp_path / "trail.jsonl"
    code, out, err = cli(capsys, "audit", "export", *officer, "--out", str(export))
    assert code == 0, out + err
    offline = ["audit", "verify", "--file", str(export), "--keys", str(keys), "--tsa-roots", str(ca.cert)]
    code, out, err = cli(capsys, *offline)
    assert code == 2 and f"run `exnode audit stamp {export}`" in err, out + err

    code, out, err = cli(capsys, "audit", "stamp", str(export), *officer, "--json")
    assert code == 0, out + err
    stamped = json.loads(out)
    assert stamped["stamped"] >= 1, stamped
    kept = Path(stamped["file"])
    assert kept == tmp_path / "trail.jsonl.timestamps.json"

    code, out, err = cli(capsys, *offline, "--json")  # the node is not asked: only the two files and the roots
    assert code == 0, out + err
    assert json.loads(out)["timestamps_checked"] == stamped["stamped"]

    untrusted = OpenSslCA(tmp_path / "other-ca", "some other TSA root")
    code, out, err = cli(capsys, "audit", "verify", "--file", str(export), "--keys", str(keys), "--tsa-roots",
                         str(untrusted.cert))
    assert code == 1 and "timestamp FAILED: checkpoint" in err and "certificate chain does not verify" in err, err

    data = json.loads(kept.read_text(encoding="utf-8"))
    assert len(data["checkpoints"]) >= 2, data["checkpoints"].keys()
    (first, evidence), (second, _) = list(data["checkpoints"].items())[:2]
    other = tmp_path / "moved.json"  # one checkpoint's evidence presented for another
    other.write_text(json.dumps({**data, "checkpoints": {first: evidence, second: evidence}}), encoding="utf-8")
    code, out, err = cli(capsys, *offline, "--timestamps", str(other))
    assert code == 1 and f"checkpoint {second}'s timestamp" in err, out + err
    tampered = tmp_path / "tampered.json"
    token = bytearray(base64.b64decode(evidence["token"]))
    token[len(token) // 2] ^= 0xFF
    tampered.write_text(json.dumps({**data, "checkpoints": {
        first: {**evidence, "token": base64.b64encode(bytes(token)).decode()}}}), encoding="utf-8")
    code, out, err = cli(capsys, *offline, "--timestamps", str(tampered))
    assert code == 1 and f"checkpoint {first}" in err, out + err

