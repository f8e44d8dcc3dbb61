"""The nightly pull through gRPC with the reference client: verified batches and manifest, resumption
from the last acknowledged batch, cursors that must be refused, a client that never acknowledges,
tampering caught before anything is written, and the close of a day."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc

from catalog.records import Record, canonical_record
from node.cli import main as cli_main
from node.clients.pull import STAGING, PullOutcome, PullProblem, TrustedNode, pull
from node.files.manifest_xml import read_day_manifest_xml
from node.pipeline import provider_batch
from node.services.pull import DAY_SIGNATURE_CONTEXT
from security import merkle
from security.keys import public_keys_document, read_public_keys
from security.pull import CursorCodec
from security.pull import parse as parse_cursor
from tests.conftest import FixedClock
from tests.fault.support import Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import register

PROVIDER = "11100000MB01284764"  # 民政部社会救助司: runs the node (the ministry) and provides 低保 records
CONSUMER = "11150100011627354Q"  # 呼和浩特市民政局
LOW_INCOME = "311140001/000001"
BATCH = 4


def _node(tmp_path: Path, database_url: str = "", clock: FixedClock | None = None, **exchange: object
          ) -> RunningNode:
    from node.cli.node_commands import load_sample

    config = make_config(tmp_path / "node", database_url)
    settings = {"pull_batch_records": BATCH, "pull_window": 2, "pull_ack_timeout_s": 20.0, **exchange}
    config = replace(config, node=replace(config.node, department_code=PROVIDER),
                     exchange=replace(config.exchange, dispatch=False, **settings))
    running = RunningNode(config, clock=clock)
    load_sample(running.node)
    return running


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    running = _node(tmp_path)
    yield running
    running.close()


class Provider:
    def __init__(self, node: RunningNode) -> None:
        self.key = Key()
        register(node, self.key)
        self.stub = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
        self.next = 1

    def send(self, count: int) -> list[Record]:
        records = [low_income_record(n) for n in range(self.next, self.next + count)]
        self.next += count
        self.stub.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, self.key)))
        return records


def trusted(node: RunningNode) -> TrustedNode:
    return TrustedNode(node.config.node.id, node.node.keys.public)


def caller(node: RunningNode, dept: str = PROVIDER, roles: tuple[str, ...] = ("platform",)):
    stub = exchange_pb2_grpc.ExchangeServiceStub(node.raw_channel)
    metadata = [("authorization", f"Bearer {node.token(dept, roles)}")]
    return lambda requests: stub.Pull(requests, metadata=metadata)


def published(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("pull-*") if p.is_dir())


def lines(directory: Path) -> list[bytes]:
    found = []
    for path in sorted(directory.glob("batch-*.jsonl")):
        found.extend(path.read_bytes().splitlines())
    return found


def canonical(records: list[Record]) -> list[bytes]:
    return [canonical_record(PROVIDER, LOW_INCOME, r) for r in records]


def grant(node: RunningNode) -> None:
    consumer = lists_pb2_grpc.ListsServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
    demand = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")))
    reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=demand.id, approve=True))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_pull_verifies_every_batch_and_the_manifest_and_the_next_cursor_continues(tmp_path, backend, request):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    node = _node(tmp_path, url)
    try:
        provider = Provider(node)
        sent = provider.send(6) + provider.send(4)
        out = tmp_path / "out"
        first = pull(caller(node), trusted(node), out)
        assert (first.records, first.batches) == (10, 3)
        assert lines(first.directory) == canonical(sent)
        manifest = json.loads((first.directory / "manifest.json").read_text())
        assert manifest["manifest"]["merkle_root"] == merkle.merkle_root(canonical(sent)).hex()
        assert not (out / STAGING).exists()

        again = pull(caller(node), trusted(node), out, since=first.next_cursor)
        assert (again.records, again.batches) == (0, 0)
        more = provider.send(3)
        third = pull(caller(node), trusted(node), out, since=again.next_cursor)
        assert lines(third.directory) == canonical(more)
        assert len(published(out)) == 3
    finally:
        node.close()


def test_a_consumer_pulls_only_its_granted_records_masked_per_grant(node, tmp_path):
    provider = Provider(node)
    with pytest.raises(grpc.RpcError) as refused:
        pull(caller(node, CONSUMER, ("consumer",)), trusted(node), tmp_path / "before")
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "no live grant" in refused.value.details()
    grant(node)
    provider.send(3)
    outcome = pull(caller(node, CONSUMER, ("consumer",)), trusted(node), tmp_path / "out")
    payloads = [json.loads(line)["payload"] for line in lines(outcome.directory)]
    assert len(payloads) == 3
    assert all(p["公民身份号码"] == "360426********0071" for p in payloads), payloads[0]


def acknowledged(node: RunningNode, platform: str = f"{PROVIDER}/node") -> int:
    with node.node.pull.uow() as uow:
        return uow.pull.acknowledged(platform)


class BreakOff:
    """Delivers the header and ``batches`` batches (None: every batch, the manifest held back), then the
    connection 'drops' once the node has stored the acknowledgement of the last one delivered: without that
    wait the drop races the acknowledgement and where the node resumes is left to chance."""

    def __init__(self, node: RunningNode, batches: int | None) -> None:
        self.node, self.batches = node, batches

    def __call__(self, requests):
        responses = caller(self.node)(requests)
        seen = last = 0
        for item in responses:
            kind = item.WhichOneof("item")
            if kind == "manifest":
                break
            yield item  # the client stages the batch and queues its acknowledgement before asking for more
            if kind == "batch":
                seen += 1
                last = parse_cursor(item.batch.to_cursor)[0].position
                if seen == self.batches:
                    break
        deadline = time.monotonic() + 60  # a bound on waiting, not a timing assertion
        while acknowledged(self.node) < last and time.monotonic() < deadline:
            time.sleep(0.02)
        responses.cancel()


def test_a_broken_off_pull_resumes_after_the_last_acknowledged_batch_without_loss_or_doubles(node, tmp_path):
    provider = Provider(node)
    sent = provider.send(10) + provider.send(7)  # 17 records: batches of 4
    out = tmp_path / "out"
    with pytest.raises(PullProblem, match="stream ended before the manifest"):
        pull(BreakOff(node, 2), trusted(node), out)
    assert published(out) == []
    assert len(list((out / STAGING).glob("batch-*.jsonl"))) == 2
    outcome: PullOutcome = pull(caller(node), trusted(node), out)
    assert outcome.resumed
    assert lines(outcome.directory) == canonical(sent)  # every record once, in order
    assert outcome.records == 17


def test_a_client_that_never_acknowledges_gets_the_same_batches_again(tmp_path):
    node = _node(tmp_path, pull_ack_timeout_s=1.0)
    try:
        provider = Provider(node)
        sent = provider.send(12)
        roots = []

        def recording(requests):
            for item in caller(node)(requests):
                if item.WhichOneof("item") == "batch":
                    roots.append(item.batch.merkle_root)
                yield item

        out = tmp_path / "out"
        with pytest.raises(grpc.RpcError) as stopped:
            pull(recording, trusted(node), out, acknowledge=False)
        assert stopped.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no acknowledgement" in stopped.value.details()
        assert len(roots) == 2  # the window: the node holds no more than that for a silent client
        with node.node.pull.uow() as uow:
            assert uow.pull.acknowledged(f"{PROVIDER}/node") == 0
        first_roots = list(roots)
        roots.clear()
        outcome = pull(recording, trusted(node), out)
        assert roots[:2] == first_roots
        assert lines(outcome.directory) == canonical(sent)
    finally:
        node.close()


def _codes(node: RunningNode, cursor: str, dept: str = PROVIDER, roles=("platform",)) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        pull(caller(node, dept, roles), trusted(node), Path(node.config.data_dir) / "refused", since=cursor)
    return refused.value


def test_cursors_from_the_future_forged_or_of_another_platform_or_node_are_refused(node, tmp_path):
    provider = Provider(node)
    grant(node)
    provider.send(3)
    codec = node.node.pull.codec()
    future = _codes(node, codec.issue(f"{PROVIDER}/node", 1000))
    assert future.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor" in future.details() and "future" in future.details()

    genuine = pull(caller(node), trusted(node), tmp_path / "out").next_cursor
    forged = genuine[:-3] + ("A" if genuine[-3] != "A" else "B") + genuine[-2:]
    refused = _codes(node, forged)
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT and "does not verify" in refused.details()

    theirs = pull(caller(node, CONSUMER, ("consumer",)), trusted(node), tmp_path / "theirs").next_cursor
    other = _codes(node, theirs)
    assert other.code() is grpc.StatusCode.PERMISSION_DENIED
    assert f"belongs to platform '{CONSUMER}/granted'" in other.details()

    elsewhere = CursorCodec(b"k" * 32, "another-node").issue(f"{PROVIDER}/node", 1)
    foreign = _codes(node, elsewhere)
    assert foreign.code() is grpc.StatusCode.INVALID_ARGUMENT and "another-node" in foreign.details()
    garbage = _codes(node, "not-a-cursor")
    assert garbage.code() is grpc.StatusCode.INVALID_ARGUMENT and "not a pull cursor" in garbage.details()
    with node.node.pull.uow() as uow:  # none of the refusals moved the acknowledged position
        assert uow.pull.acknowledged(f"{PROVIDER}/node") == 3


def test_an_acknowledgement_must_name_a_batch_of_this_pull(node):
    Provider(node).send(2)
    stub = exchange_pb2_grpc.ExchangeServiceStub(node.raw_channel)
    requests = [pb.PullRequest(start=pb.PullStart()), pb.PullRequest(ack=pb.PullAck(cursor="pc1.bogus"))]
    metadata = [("authorization", f"Bearer {node.token(PROVIDER, ('platform',))}")]
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.Pull(iter(requests), metadata=metadata))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ack.cursor" in refused.value.details()


def tampering(call, change):
    def wrapped(requests):
        for item in call(requests):
            change(item)
            yield item
    return wrapped


def _second_batch_record(item: pb.PullItem) -> None:
    if item.WhichOneof("item") == "batch" and item.batch.index == 1:
        item.batch.records[0] = item.batch.records[0].replace(b"\\u5f20", b"\\u674e").replace("张".encode(), "李".encode())


@pytest.mark.parametrize(("change", "problem"), [
    (_second_batch_record, "batch 1 .*the records hash to"),
    (lambda item: item.WhichOneof("item") == "manifest" and setattr(item.manifest, "record_count", 99),
     "manifest: says 99 records"),
    (lambda item: item.WhichOneof("item") == "manifest" and setattr(item.manifest, "signature", b"\0" * 64),
     "manifest: the signature does not verify"),
    (lambda item: item.WhichOneof("item") == "batch" and item.batch.index == 0
     and setattr(item.batch, "signature", b"\0" * 64), "batch 0 .*signature does not verify"),
])
def test_the_reference_client_refuses_a_tampered_batch_or_manifest_and_publishes_nothing(node, tmp_path, change,
                                                                                          problem):
    Provider(node).send(10)
    out = tmp_path / "out"
    with pytest.raises(PullProblem, match=problem):
        pull(tampering(caller(node), change), trusted(node), out)
    assert published(out) == []
    staged = out / STAGING
    for path in staged.glob("batch-*.jsonl"):  # whatever is staged was verified
        assert all(b"\\u674e" not in line and "李".encode() not in line for line in path.read_bytes().splitlines())


def test_a_manifest_replayed_from_an_earlier_pull_of_the_same_range_is_refused_by_its_signing_time(tmp_path):
    """The node signs each manifest's time (version 2): an hour-old manifest of exactly this range — same
    cursors, counts and root, a valid signature — is refused by its date; the node's fresh one is taken."""
    clock = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    node = _node(tmp_path, clock=clock)
    try:
        Provider(node).send(3)
        kept: list[pb.Manifest] = []

        def keep(item: pb.PullItem) -> None:
            if item.WhichOneof("item") == "manifest":
                kept.append(pb.Manifest())
                kept[-1].CopyFrom(item.manifest)

        # Signed an hour before this client began, the node's own manifest is already indistinguishable
        # from a replay: refused, nothing acknowledged past the batches.
        with pytest.raises(PullProblem, match="a replayed manifest"):
            pull(tampering(caller(node), keep), trusted(node), tmp_path / "early")
        clock.now = dt.datetime.now(dt.UTC)
        assert kept and kept[0].version == 2 and kept[0].signed_at

        def replay(item: pb.PullItem) -> None:
            if item.WhichOneof("item") == "manifest":
                assert item.manifest.signed_at != kept[0].signed_at
                item.manifest.CopyFrom(kept[0])

        out = tmp_path / "out"
        with pytest.raises(PullProblem, match=re.escape(f"manifest: signed at {kept[0].signed_at}, before this pull began")):
            pull(tampering(caller(node), replay), trusted(node), out, replay=True)
        assert published(out) == []
        fresh = pull(caller(node), trusted(node), out, replay=True)
        document = json.loads((fresh.directory / "manifest.json").read_text())["manifest"]
        assert fresh.records == 3 and document["version"] == 2 and document["signed_at"] != kept[0].signed_at
        assert cli_main(["pull", "verify", str(fresh.directory), "--keys", str(_keys_file(node, tmp_path))]) == 0
    finally:
        node.close()


def _keys_file(node: RunningNode, tmp_path: Path) -> Path:
    keys = tmp_path / "public-keys.json"
    keys.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)))
    return keys


def test_exnode_pull_prints_the_next_cursor_and_refuses_keys_of_another_node(node, tmp_path, capsys):
    Provider(node).send(5)
    keys = tmp_path / "public-keys.json"
    keys.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)))
    token = node.token(PROVIDER, ("platform",))
    base = ["pull", "--server", node.address, "--token", token, "--out", str(tmp_path / "out")]
    assert cli_main([*base, "--keys", str(keys)]) == 0
    cursor = capsys.readouterr().out.strip()
    assert cursor.startswith("pc1.")
    assert cli_main([*base, "--since", cursor, "--json"]) == 0  # keys from KeysService
    assert json.loads(capsys.readouterr().out)["records"] == 0

    other = json.loads(keys.read_text())
    other["node_id"] = "someone-else"
    keys.write_text(json.dumps(other))
    assert cli_main([*base, "--keys", str(keys), "--replay"]) == 1
    assert "pull refused: header: the node says it is" in capsys.readouterr().err
    assert cli_main([*base, "--until-day", "yesterday"]) == 2


def test_batch_nightly_closes_a_day_once_with_a_signed_manifest_and_valid_xml(tmp_path, capsys):
    clock = FixedClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))  # 17:00 in Beijing
    node = _node(tmp_path, clock=clock)
    try:
        provider = Provider(node)
        day_records = provider.send(5)
        clock.advance(hours=16)  # 2026-03-03 09:00 Beijing: the next day
        provider.send(2)
        refused = _codes_day(node, "2026-03-02")
        assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION and "not closed" in refused.details()
        with pytest.raises(Exception, match="not over"):
            node.node.pull.close_day(dt.date(2026, 3, 3))

        data = node.config.data_dir
        assert cli_main(["batch", "nightly", "--data", str(data), "--date", "2026-03-02"]) == 0
        assert "closed now" in capsys.readouterr().out
        xml_path = data / "manifests" / "day-2026-03-02.xml"
        first_xml = xml_path.read_bytes()
        assert cli_main(["batch", "nightly", "--data", str(data), "--date", "2026-03-02", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["created"] is False and xml_path.read_bytes() == first_xml

        document, kid, signature = read_day_manifest_xml(first_xml)
        keys = read_public_keys(data / "keys" / "keyring.json")
        assert keys[kid].verify(DAY_SIGNATURE_CONTEXT + document.encode(), signature)
        body = json.loads(document)
        assert body["record_count"] == 5 and body["day"] == "2026-03-02"
        assert body["merkle_root"] == merkle.merkle_root(canonical(day_records)).hex()
        assert body["resources"] == [{"provider": PROVIDER, "resource": LOW_INCOME, "records": 5}]

        until_day = pull(caller(node), trusted(node), tmp_path / "out", until_day="2026-03-02", clock=clock)
        assert lines(until_day.directory) == canonical(day_records)  # the next day's records wait
    finally:
        node.close()


def _codes_day(node: RunningNode, day: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        pull(caller(node), trusted(node), Path(node.config.data_dir) / "early", until_day=day)
    return refused.value


def test_pages_in_position_windows_find_sparse_records_in_order_and_stop_at_the_high_water_mark(database_url):
    from node.storage.database import make_engine, migrate
    from node.storage.pull_repository import PullRepository

    migrate(database_url)
    engine = make_engine(database_url)
    at = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    rows = [{"provider_code": PROVIDER, "resource_code": LOW_INCOME if n % 7 == 0 else "311140001/000002",
             "record_id": f"R{n}", "sequence": n, "operation": "UPSERT", "payload": "{}", "content_hash": "0" * 64,
             "batch_id": "b", "received_at": at, "position": n} for n in range(1, 301)]
    try:
        with engine.begin() as connection:
            PullRepository(connection).add_positioned(rows)
        with engine.connect() as connection:
            repository = PullRepository(connection)
            found, after = [], 0
            while page := repository.page(after, 290, 3, only={LOW_INCOME}):
                found.extend(row.position for row in page)
                after = page[-1].position
            assert found == [n for n in range(7, 291, 7)]
            assert [r.position for r in repository.page(0, 300, 500, excluding={LOW_INCOME})] == \
                [n for n in range(1, 301) if n % 7]
    finally:
        engine.dispose()
