"""A routed verification's verdict is timestamped by the node that answered it (issue 17 §4): the lower node
signs the verdict and queues it for its own TSA round; the caller, who asked the upper node, fetches that
evidence through the upper node (``exnode verdict stamp`` → KeysService.GetTimestamp with the verdict's node,
relayed over RabbitMQ to it) and ``exnode verdict verify --tsa-roots`` checks it offline: the token's
signature, the TSA's chain, the imprint over what the answering node signed. The TSA is real (``openssl ts``
behind HTTP); the broker is the real RabbitMQ."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pika
import pytest
from exnode.v1 import exchange_pb2_grpc, keys_pb2, keys_pb2_grpc

from catalog.records import Record
from node.bootstrap import load_sample
from node.cli import main
from node.pipeline import provider_batch
from security.keys import KeyStore, public_keys_document
from tests.fault.support import AMQP, CONSUMER, LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import register
from tests.integration.test_remote_verify import WANG, claim, verification_grant
from tests.integration.tls_servers import OpenSslCA
from tests.integration.tsa_server import OpenSslTsa


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> OpenSslCA:
    return OpenSslCA(tmp_path_factory.mktemp("tsa-ca"), "exnode test TSA root")


@pytest.fixture(scope="module")
def tsa(ca: OpenSslCA) -> Iterator[OpenSslTsa]:
    server = OpenSslTsa(ca)
    yield server
    server.close()


@pytest.fixture
def pair(tmp_path: Path, tsa: OpenSslTsa, ca: OpenSslCA) -> Iterator[tuple[RunningNode, RunningNode]]:
    """A lower node with a TSA holding 低保 records, an upper node holding its read-only entry; peers."""
    lower_id, upper_id = f"tl{uuid.uuid4().hex[:8]}", f"tu{uuid.uuid4().hex[:8]}"
    configs = {}
    for name, node_id in (("lower", lower_id), ("upper", upper_id)):
        config = make_config(tmp_path / name)
        configs[name] = replace(config, node=replace(config.node, id=node_id),
                                exchange=replace(config.exchange, dispatch=False))
    configs["lower"] = replace(configs["lower"], tsa=replace(configs["lower"].tsa, url=tsa.url,
                                                              roots_file=str(ca.cert)))
    for name, other, other_id in (("lower", "upper", upper_id), ("upper", "lower", lower_id)):
        peers = configs[name].path(configs[name].exchange.peers_dir)
        peers.mkdir(parents=True, exist_ok=True)
        (peers / f"{other_id}.json").write_text(json.dumps(public_keys_document(
            KeyStore.load(configs[other].keys_dir), other_id)), encoding="utf-8")
    lower, upper = RunningNode(configs["lower"]), RunningNode(configs["upper"])
    try:
        load_sample(lower.node)
        with lower.node.uow() as uow:
            entry = uow.catalog.get(LOW_INCOME)
        with upper.node.uow(write=True) as uow:
            uow.catalog.put_foreign(entry, lower_id, dt.datetime.now(dt.UTC))
            uow.commit()
        key = Key()
        register(lower, key)
        record = low_income_record(1)
        exchange_pb2_grpc.ExchangeServiceStub(lower.channel_as(PROVIDER, ["provider"])).Ingest(as_proto(
            provider_batch(PROVIDER, LOW_INCOME, [Record(record.id, 1, record.operation, {
                **record.payload, "公民身份号码": WANG, "姓名": "王芳"})], key)))
        for running in (lower, upper):
            running.start_rpc(timeout_s=60)
        yield lower, upper
    finally:
        lower.close()
        upper.close()
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
            channel = connection.channel()
            for node_id in (lower_id, upper_id):
                for suffix in ("rpc", "rpc-reply", "dlq"):
                    channel.queue_delete(f"exnode.{node_id}.{suffix}")
                channel.exchange_delete(f"exnode.{node_id}.dlx")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_routed_verdict_carries_the_answering_node_s_timestamp_checked_offline(
        pair: tuple[RunningNode, RunningNode], ca: OpenSslCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    lower, upper = pair
    verification_grant(lower, ("姓名",))
    verdict = claim(upper, 姓名="王芳")
    document = json.loads(verdict.document)
    assert document["node"] == lower.config.node.id  # signed by the node that answered
    file = tmp_path / "verdict.json"
    file.write_text(json.dumps({"verdict": document, "signature": base64.b64encode(verdict.signature).decode(),
                                "request": json.loads(verdict.request)}, ensure_ascii=False), encoding="utf-8")
    keys = tmp_path / "lower-keys.json"
    keys.write_text(json.dumps(public_keys_document(lower.node.keys, lower.config.node.id)), encoding="utf-8")
    stamp = ["verdict", "stamp", str(file), "--data", str(upper.config.data_dir), "--server", upper.address,
             "--token", upper.token(CONSUMER, ["consumer"])]

    code, _, err = cli(capsys, *stamp)  # the lower node's TSA round has not run: it says so, through the upper
    assert code != 0 and "waits for its timestamp" in err, err
    assert lower.node.timestamps.stamp_once() >= 1
    code, out, err = cli(capsys, *stamp)
    assert code == 0 and "RFC 3161 timestamp added" in out, err
    code, out, err = cli(capsys, "verdict", "verify", str(file), "--keys", str(keys), "--tsa-roots", str(ca.cert))
    assert code == 0 and "RFC 3161 timestamp" in out and lower.config.node.id in out, err
    untrusted = OpenSslCA(tmp_path / "other-ca", "some other TSA root")
    code, _, err = cli(capsys, "verdict", "verify", str(file), "--keys", str(keys), "--tsa-roots", str(untrusted.cert))
    assert code == 1 and "certificate chain does not verify" in err, err

    stub = keys_pb2_grpc.KeysServiceStub(upper.channel_as(CONSUMER, ["consumer"]))
    for request, status, words in [
        (keys_pb2.GetTimestampRequest(kind="verdict", ref="00" * 32, node_id=lower.config.node.id,
                                      resource_code=LOW_INCOME), grpc.StatusCode.NOT_FOUND, lower.config.node.id),
        (keys_pb2.GetTimestampRequest(kind="verdict", ref="00" * 32, node_id=lower.config.node.id),
         grpc.StatusCode.INVALID_ARGUMENT, "resource_code"),
        (keys_pb2.GetTimestampRequest(kind="pull", ref="00" * 32, node_id=lower.config.node.id,
                                      resource_code=LOW_INCOME), grpc.StatusCode.INVALID_ARGUMENT, "node_id"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetTimestamp(request, timeout=90)
        assert refused.value.code() is status and words in refused.value.details(), refused.value.details()
