"""Trusted timestamps (issue 17 §4) from a real TSA (``openssl ts -reply`` behind HTTP, a certificate of the
test CA): the batch roots of many ingests are stamped by one token over their root of roots and verify
offline; a token over other data, from an untrusted TSA or replayed is refused naming it; during an outage
the node keeps taking records, counts what waits, and after the limit refuses ingest with UNAVAILABLE."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2_grpc
from sqlalchemy import update

from node.bootstrap import load_sample
from node.cli import main
from node.ops.metrics import NodeCollector
from node.pipeline import provider_batch
from node.services.pull import BEIJING
from node.storage.tables import tsa_tokens
from security.timestamps import load_roots, request_for
from tests.fault.support import LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import register
from tests.integration.tls_servers import OpenSslCA
from tests.integration.tsa_server import OpenSslTsa

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> OpenSslCA:
    return OpenSslCA(tmp_path_factory.mktemp("tsa-ca"), "exnode test TSA root")


@pytest.fixture
def tsa(ca: OpenSslCA) -> Iterator[OpenSslTsa]:
    server = OpenSslTsa(ca)
    yield server
    server.close()


def node_with_tsa(tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA, clock: object | None = None,
                  **settings: float) -> RunningNode:
    data = tmp_path / "node"
    config = make_config(data, database_url)
    node_id = f"t{uuid.uuid4().hex[:10]}"
    (data / "exnode.toml").write_text(f'[node]\nid = "{node_id}"\n[database]\nurl = "{database_url}"\n'
                                      f'[tsa]\nurl = "{tsa.url}"\nroots_file = "{ca.cert}"\n',
                                      encoding="utf-8")  # for the CLI's local verification
    config = replace(config, node=replace(config.node, id=node_id),
                     tsa=replace(config.tsa, url=tsa.url, roots_file=str(ca.cert), **settings),
                     exchange=replace(config.exchange, dispatch=False))
    running = RunningNode(config, clock=clock)
    load_sample(running.node)
    return running


@pytest.fixture
def node(tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA) -> Iterator[RunningNode]:
    running = node_with_tsa(tmp_path, database_url, tsa, ca)
    yield running
    running.close()


def ingest(node: RunningNode, batches: int, first: int = 1) -> None:
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    for n in range(batches):
        records = [low_income_record(first + n * 2), low_income_record(first + n * 2 + 1)]
        provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key)))


def tsa_verify(node: RunningNode, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["tsa", "verify", "--data", str(node.config.data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def gauges(node: RunningNode) -> dict[str, float]:
    return {m.name: m.samples[0].value for m in NodeCollector(node.node).collect()
            if m.name.startswith("exnode_tsa_")}


def test_many_batch_roots_are_stamped_by_one_token_that_verifies_offline(node: RunningNode, tsa: OpenSslTsa,
                                                                         tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]):
    ingest(node, 5)
    node.node.audit_writer.checkpoint_if_due(force=True)
    node.node.pull.close_day(dt.datetime.now(BEIJING).date() - dt.timedelta(days=1))  # a pull manifest
    with node.node.uow() as uow:
        kinds = [p.kind for p in uow.timestamps.pending(100)]
    assert kinds.count("batch") == 5 and "checkpoint" in kinds and kinds.count("day") == 1
    assert gauges(node)["exnode_tsa_unstamped_roots"] == len(kinds)
    timestamps = node.node.timestamps
    assert timestamps is not None and timestamps.stamp_once() == len(kinds) and tsa.requests == 1
    assert gauges(node) == {"exnode_tsa_unstamped_roots": 0, "exnode_tsa_oldest_unstamped_age_seconds": 0}
    code, out, err = tsa_verify(node, capsys)
    assert code == 0 and "tsa verify: OK, 1 tokens" in out, err
    code = main(["audit", "verify", "--local", "--data", str(node.config.data_dir)])
    out, err = capsys.readouterr()
    assert code == 0 and "1 RFC 3161 timestamps verify" in out, out + err
    timestamps.roots = load_roots(OpenSslCA(tmp_path / "elsewhere", "another root").cert)  # not the TSA's
    count, problems = timestamps.verify()
    assert count == 1 and problems and "timestamp 1: the token's signature or the TSA's certificate chain does " \
        "not verify against the trusted roots" in problems[0]


def test_a_token_over_other_data_or_from_an_untrusted_tsa_fails_verification_naming_it(
        node: RunningNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ingest(node, 2)
    assert node.node.timestamps.stamp_once() >= 2
    with node.node.uow(write=True) as uow:  # the token of another TSA session, over another root
        other = OpenSslCA(tmp_path / "other", "another CA")
        stranger = OpenSslTsa(other, "stranger")
        try:
            foreign = stranger.reply(request_for(b"other data").der)
        finally:
            stranger.close()
        uow.connection.execute(update(tsa_tokens).values(reply=foreign))
        uow.commit()
    code, out, err = tsa_verify(node, capsys)
    assert code == 1 and "timestamp 1: the token is over other data" in err, err
    code = main(["audit", "verify", "--local", "--data", str(node.config.data_dir)])
    out, err = capsys.readouterr()
    assert code == 1 and "timestamp FAILED: timestamp 1: the token is over other data" in err, out + err
    with node.node.uow(write=True) as uow:
        uow.connection.execute(update(tsa_tokens).values(reply=b"not a reply"))
        uow.commit()
    count, problems = node.node.timestamps.verify()
    assert count == 1 and len(problems) == 1 and problems[0].startswith(
        "timestamp 1: not an RFC 3161 time-stamp reply"), problems


def test_a_tsa_outside_the_trusted_roots_is_refused_and_the_roots_keep_waiting(
        tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA):
    other = OpenSslCA(tmp_path / "untrusted", "untrusted CA")
    running = node_with_tsa(tmp_path, database_url, tsa, other)  # this TSA does not chain to `other`
    try:
        ingest(running, 2)
        assert running.node.timestamps.stamp_once() == 0
        assert "certificate chain does not verify against the trusted roots" in running.node.timestamps.last_error
        assert gauges(running)["exnode_tsa_unstamped_roots"] >= 2
    finally:
        running.close()


def test_a_replayed_token_is_refused(node: RunningNode, tsa: OpenSslTsa):
    ingest(node, 1)
    assert node.node.timestamps.stamp_once() >= 1
    ingest(node, 1, first=100)
    tsa.replay = True  # the TSA (or someone between) answers with the previous token
    assert node.node.timestamps.stamp_once() == 0
    assert "a replayed token" in node.node.timestamps.last_error
    tsa.replay = False
    assert node.node.timestamps.stamp_once() >= 1


def test_during_an_outage_records_are_taken_until_the_limit_then_ingest_is_unavailable_naming_it(
        tmp_path: Path, database_url: str, tsa: OpenSslTsa, ca: OpenSslCA):
    running = node_with_tsa(tmp_path, database_url, tsa, ca, max_unstamped_age_s=2.0)
    try:
        tsa.down = True
        ingest(running, 2)  # the TSA is down: the records are taken, their roots wait
        assert running.node.timestamps.stamp_once() == 0 and "did not answer" in running.node.timestamps.last_error
        waiting = gauges(running)
        assert waiting["exnode_tsa_unstamped_roots"] >= 2
        time.sleep(2.5)
        assert gauges(running)["exnode_tsa_oldest_unstamped_age_seconds"] > 2.0
        with pytest.raises(grpc.RpcError) as caught:
            ingest(running, 1, first=50)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "time-stamping authority" in caught.value.details() and "tsa.max_unstamped_age_s" in caught.value.details()
        tsa.down = False
        assert running.node.timestamps.stamp_once() == waiting["exnode_tsa_unstamped_roots"]
        ingest(running, 1, first=60)  # stamped again: ingest goes on
    finally:
        running.close()
