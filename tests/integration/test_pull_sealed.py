"""A pull sealed to the consumer (issue 17 §2, "pull batches on request"): with PullStart.sealed every batch
travels packed and sealed to the department's registered encryption key, so nothing on the wire (or in a
proxy that terminates TLS) shows the records; the reference client opens each batch and verifies it as
before. Without a registered key a sealed pull is refused; a changed sealed batch is refused naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc

from node.cli import main as cli_main
from node.clients.pull import PullProblem, pull
from security.sealing import ConsumerPrivateKey
from tests.integration.grpc_node import RunningNode
from tests.integration.test_pull import PROVIDER, Provider, _node, caller, canonical, lines, trusted


@pytest.fixture
def node(tmp_path) -> Iterator[RunningNode]:
    running = _node(tmp_path)
    yield running
    running.close()


def register_encryption_key(node, key: ConsumerPrivateKey) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["catalog_admin"]))
    stub.RegisterEncryptionKey(pb.RegisterEncryptionKeyRequest(department_code=PROVIDER, algorithm=key.algorithm,
                                                               public_pem=key.public_pem))


class Recorded:
    """The stream as the wire carries it: every batch kept for inspection."""

    def __init__(self, call) -> None:
        self.call, self.batches = call, []

    def __call__(self, requests):
        for item in self.call(requests):
            if item.WhichOneof("item") == "batch":
                self.batches.append(pb.PullBatch.FromString(item.batch.SerializeToString()))
            yield item


@pytest.mark.parametrize("algorithm", ["X25519-HPKE", "SM2-SM4"])
def test_a_sealed_pull_carries_only_ciphertext_and_the_client_opens_and_verifies_it(node, tmp_path, algorithm):
    key = ConsumerPrivateKey.generate(algorithm)
    register_encryption_key(node, key)
    sent = Provider(node).send(10)
    wire = Recorded(caller(node))
    outcome = pull(wire, trusted(node), tmp_path / "out", key=key)
    assert outcome.records == 10 and lines(outcome.directory) == canonical(sent)
    assert wire.batches and all(not b.records and b.sealed_records and b.sealing["x-exnode-enc-kid"] == key.kid
                                for b in wire.batches)
    carried = b"".join(b.SerializeToString() for b in wire.batches)
    assert b"360426199101010071" not in carried and "呼和浩特市".encode() not in carried


def test_a_sealed_pull_without_a_registered_key_is_refused(node, tmp_path):
    Provider(node).send(2)
    with pytest.raises(grpc.RpcError) as caught:
        pull(caller(node), trusted(node), tmp_path / "out", key=ConsumerPrivateKey.generate())
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "registered no encryption key" in caught.value.details()


def test_a_changed_sealed_batch_is_refused_and_nothing_is_published(node, tmp_path):
    key = ConsumerPrivateKey.generate()
    register_encryption_key(node, key)
    Provider(node).send(6)

    def tampered(requests):
        for item in caller(node)(requests):
            if item.WhichOneof("item") == "batch" and item.batch.index == 1:
                blob = bytearray(item.batch.sealed_records)
                blob[-1] ^= 1
                item.batch.sealed_records = bytes(blob)
            yield item

    with pytest.raises(PullProblem, match=r"batch 1 .*tag does not verify"):
        pull(tampered, trusted(node), tmp_path / "out", key=key)
    assert not list((tmp_path / "out").glob("pull-*"))


def test_exnode_makes_registers_and_uses_a_consumer_key_for_a_sealed_pull(node, tmp_path, capsys):
    Provider(node).send(5)
    private = tmp_path / "consumer.key.pem"
    assert cli_main(["keys", "consumer-new", "--out", str(private)]) == 0
    public = tmp_path / "consumer.pub.pem"
    public.write_text(capsys.readouterr().out, encoding="utf-8")
    admin = node.token(PROVIDER, ("catalog_admin",))
    assert cli_main(["keys", "consumer-register", "--server", node.address, "--token", admin, "--dept", PROVIDER,
                     "--public", str(public)]) == 0
    assert "registered for" in capsys.readouterr().out
    token = node.token(PROVIDER, ("platform",))
    base = ["pull", "--server", node.address, "--token", token, "--json"]
    assert cli_main([*base, "--out", str(tmp_path / "out"), "--decrypt-key", str(private)]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 5
    other = tmp_path / "other.key.pem"
    assert cli_main(["keys", "consumer-new", "--out", str(other)]) == 0
    capsys.readouterr()
    assert cli_main([*base, "--out", str(tmp_path / "again"), "--replay", "--decrypt-key", str(other)]) == 1
    assert "not to this key" in capsys.readouterr().err
