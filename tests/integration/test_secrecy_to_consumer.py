"""End-to-end encryption to the consumer (issue 17 §2): a consumer that registered an encryption key gets
every relayed message sealed to it (HPKE X25519 / AES-256-GCM, or SM2 + SM4 for the national suite), so the
bodies on its queue hold no ID number in clear, while the reference consumer opens them and the node's
signature verifies. A key that is no public key is INVALID_ARGUMENT; a changed message is refused naming
its record; a consumer without a key gets clear messages, and the audit entry says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc

from adapters.consumer import UnreadableMessage, read_message
from node.pipeline import provider_batch
from node.storage.audit_repository import AuditFilter
from security.sealing import SEALED_CONTENT_TYPE, ConsumerPrivateKey
from tests.fault.support import CONSUMER, LOW_INCOME, PROVIDER, Key, as_proto
from tests.integration.grpc_node import RunningNode
from tests.integration.test_exchange_relay import register
from tests.integration.test_secrecy_at_rest import assert_absent, personal_record, running_node, secrets_of

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[RunningNode]:
    yield from running_node(tmp_path, database_url)


def drain_raw(node: RunningNode, expected: int, timeout: float = 30.0) -> list[tuple[str, dict, bytes]]:
    import time

    import pika

    from tests.fault.support import AMQP
    out: list[tuple[str, dict, bytes]] = []
    deadline = time.monotonic() + timeout
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        while len(out) < expected and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(f"exnode.{node.config.node.id}.out.hhht")
            if method is None:
                time.sleep(0.1)
                continue
            out.append((properties.content_type, dict(properties.headers or {}), body))
            channel.basic_ack(method.delivery_tag)
    return out


def grant_in_clear_and_subscribe(node: RunningNode, *, clear_delivery: bool = False) -> None:
    """A grant that leaves the ID numbers and the address unmasked (only the phone number is masked): what
    the consumer's queue would then show in clear is what the sealing must hide."""
    consumer = lists_pb2_grpc.ListsServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
    demand = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")))
    reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=demand.id, approve=True, masking={"联系电话": "keep:3,4"},
                                                        clear_delivery=clear_delivery))
    exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["consumer"])).Subscribe(
        pb.SubscribeRequest(resource_code=LOW_INCOME, platform="hhht"))


def register_encryption_key(node: RunningNode, key: ConsumerPrivateKey) -> str:
    consumer = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    return consumer.RegisterEncryptionKey(pb.RegisterEncryptionKeyRequest(
        department_code=CONSUMER, algorithm=key.algorithm, public_pem=key.public_pem)).key_id


def ingest_unmasked(node: RunningNode, numbers: range) -> list:
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    sent = [personal_record(n) for n in numbers]
    assert provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, sent, key))).accepted == len(sent)
    return sent


@pytest.mark.parametrize("algorithm", ["X25519-HPKE", "SM2-SM4"])
def test_messages_to_a_consumer_with_a_key_are_ciphertext_on_the_queue_and_open_and_verify(
        node: RunningNode, algorithm: str):
    key = ConsumerPrivateKey.generate(algorithm)
    assert register_encryption_key(node, key) == key.kid
    grant_in_clear_and_subscribe(node)
    sent = ingest_unmasked(node, range(1, 21))
    messages = drain_raw(node, 20)
    assert len(messages) == 20
    secrets = secrets_of(sent) + [r.payload["姓名"].encode() for r in sent]
    assert_absent(b"".join(body for _, _, body in messages), secrets, "the consumer's queue")
    trusted = {node.config.node.id: node.node.keys.public}
    received = [read_message(key, "regional", trusted, content_type, headers, body)
                for content_type, headers, body in messages]
    assert all(r.sealed for r in received) and {c for c, _, _ in messages} == {SEALED_CONTENT_TYPE}
    assert sorted(r.envelope.records[0].payload["公民身份号码"] for r in received) == sorted(
        r.payload["公民身份号码"] for r in sent)
    content_type, headers, body = messages[0]
    changed = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(UnreadableMessage, match=f"record {headers['x-exnode-record-id']}.*tag does not verify"):
        read_message(key, "regional", trusted, content_type, headers, changed)
    with pytest.raises(UnreadableMessage, match="not to this key"):
        read_message(ConsumerPrivateKey.generate(algorithm), "regional", trusted, content_type, headers, body)
    entries = node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries
    assert "in clear" not in entries[0].record.detail


def test_a_consumer_without_a_key_gets_nothing_unless_its_grant_allows_clear_delivery(node: RunningNode):
    grant_in_clear_and_subscribe(node)
    sent = ingest_unmasked(node, range(1, 4))
    assert drain_raw(node, 1, timeout=3) == []
    entries = node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries
    assert f"withheld from {CONSUMER} (no encryption key registered" in entries[0].record.detail
    assert len(sent) == 3


def test_a_consumer_without_a_key_gets_clear_messages_when_its_grant_says_so_and_the_audit_entry_says_so(
        node: RunningNode):
    grant_in_clear_and_subscribe(node, clear_delivery=True)
    sent = ingest_unmasked(node, range(1, 4))
    messages = drain_raw(node, 3)
    assert sent[0].payload["公民身份号码"].encode() in b"".join(body for _, _, body in messages)  # the control
    trusted = {node.config.node.id: node.node.keys.public}
    received = [read_message(None, "regional", trusted, *message) for message in messages]
    assert not any(r.sealed for r in received) and len(received) == len(sent)
    entries = node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries
    assert f"sent in clear (no encryption key registered; the grant allows it) to {CONSUMER}" in \
        entries[0].record.detail


@pytest.mark.parametrize(("algorithm", "pem", "words"), [
    ("X25519-HPKE", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a X25519-HPKE public key"),
    ("X25519-HPKE", ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), "not an X25519"),
    ("SM2-SM4", ConsumerPrivateKey.generate("X25519-HPKE").public_pem, "SM2"),
    ("RSA-OAEP", ConsumerPrivateKey.generate("X25519-HPKE").public_pem, "unknown algorithm"),
])
def test_an_encryption_key_that_is_no_public_key_of_its_algorithm_is_invalid_argument(
        node: RunningNode, algorithm: str, pem: str, words: str):
    consumer = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    with pytest.raises(grpc.RpcError) as caught:
        consumer.RegisterEncryptionKey(pb.RegisterEncryptionKeyRequest(
            department_code=CONSUMER, algorithm=algorithm, public_pem=pem))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "public_pem" in caught.value.details()
    assert words in caught.value.details()
    with node.node.uow() as uow:
        assert uow.exchange.consumer_key(CONSUMER) is None


def test_another_department_cannot_register_a_consumer_s_key(node: RunningNode):
    other = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["consumer"]))
    with pytest.raises(grpc.RpcError) as caught:
        other.RegisterEncryptionKey(pb.RegisterEncryptionKeyRequest(
            department_code=CONSUMER, algorithm="X25519-HPKE",
            public_pem=ConsumerPrivateKey.generate().public_pem))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
