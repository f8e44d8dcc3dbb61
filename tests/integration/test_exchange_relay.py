"""The exchange pipeline against the real broker: signed batches in, one transaction, relayed through
RabbitMQ to each platform in its own format, masked per grant and verifiable."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pika
import pytest
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc

from adapters.codecs import envelope as envelopes
from adapters.platforms import codec_for
from catalog.records import Record
from node.bootstrap import load_sample
from node.pipeline import batch_leaves, provider_batch
from node.storage.audit_repository import AuditFilter
from node.storage.errors import StorageFull
from security import merkle
from security.audit import AuditRecord
from tests.fault.support import AMQP, CONSUMER, LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    node_id = f"t{uuid.uuid4().hex[:10]}"
    data = tmp_path / "node"
    config = make_config(data)
    (data / "platforms.toml").write_text(
        f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n'
        f'[[platform]]\nname = "hhht-xml"\nkind = "ministry"\nconsumer_code = "{CONSUMER}"\n'
        f'[[platform]]\nname = "hhht-pb"\nkind = "department"\nconsumer_code = "{CONSUMER}"\n', encoding="utf-8")
    config = replace(config, node=replace(config.node, id=node_id))
    running = RunningNode(config)
    load_sample(running.node)
    running.node.start_dispatcher()
    yield running
    running.close()
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        for suffix in ("out.hhht", "out.hhht-xml", "out.hhht-pb", "dlq", "in"):
            channel.queue_delete(f"exnode.{node_id}.{suffix}")
        channel.exchange_delete(f"exnode.{node_id}.dlx")


def grant_and_subscribe(node: RunningNode, platforms: tuple[str, ...]) -> None:
    consumer = lists_pb2_grpc.ListsServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
    demand = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格复核", legal_basis="社会救助暂行办法", contact="王芳")))
    reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=demand.id, approve=True, clear_delivery=True))
    stub = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    for platform in platforms:
        stub.Subscribe(pb.SubscribeRequest(resource_code=LOW_INCOME, platform=platform))


def register(node: RunningNode, key: Key) -> None:
    admin = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["catalog_admin"]))
    key.kid = admin.RegisterKey(pb.RegisterKeyRequest(department_code=PROVIDER, algorithm="Ed25519",
                                                      public_pem=key.pem)).key_id


def drain(queue: str, expected: int, timeout: float = 30.0) -> list[tuple[dict, bytes]]:
    out: list[tuple[dict, bytes]] = []
    deadline = time.monotonic() + timeout
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        while len(out) < expected and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue)
            if method is None:
                time.sleep(0.1)
                continue
            out.append((dict(properties.headers or {}), body))
            channel.basic_ack(method.delivery_tag)
    return out


def test_a_signed_batch_reaches_every_platform_in_its_format_masked_and_verifiable(node: RunningNode):
    key = Key()
    register(node, key)
    grant_and_subscribe(node, ("hhht", "hhht-xml", "hhht-pb"))
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    batch = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(n) for n in range(1, 21)], key)
    answer = provider.Ingest(as_proto(batch))
    assert (answer.accepted, answer.duplicates, answer.subscribers) == (20, 0, 3)
    trusted = {node.config.node.id: node.node.keys.public}
    for platform, kind in (("hhht", "regional"), ("hhht-xml", "ministry"), ("hhht-pb", "department")):
        messages = drain(f"exnode.{node.config.node.id}.out.{platform}", 20)
        assert len(messages) == 20  # one message per record, each verifiable on its own
        parts = [codec_for(kind).decode(body) for _, body in messages]
        for (headers, _), part in zip(messages, parts, strict=True):
            assert envelopes.verify(part, trusted) == []
            assert headers["x-exnode-batch-id"] == batch.batch_id and headers["x-exnode-provider"] == PROVIDER
            assert headers["x-exnode-record-id"] == part.records[0].id
            assert headers["x-exnode-signature"] == part.signed.signature.hex()
        assert sorted(r.id for p in parts for r in p.records) == sorted(r.id for r in batch.records)
        first = parts[0].records[0].payload
        assert first["公民身份号码"] == "360426********0071" and first["联系电话"] == "138****5678"
    status = provider.GetDeliveryStatus(pb.DeliveryStatusRequest(batch_id=batch.batch_id))
    deadline = time.monotonic() + 10
    while status.state != "PUBLISHED" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = provider.GetDeliveryStatus(pb.DeliveryStatusRequest(batch_id=batch.batch_id))
    assert status.state == "PUBLISHED" and status.record_count == 20
    stored = node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries
    assert len(stored) == 1 and batch.batch_id in stored[0].record.detail


def test_resending_is_a_duplicate_and_other_content_under_the_same_id_is_refused(node: RunningNode):
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    records = [low_income_record(n) for n in range(1, 4)]
    assert provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key))).accepted == 3
    again = provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key)))
    assert (again.accepted, again.duplicates) == (0, 3)
    changed = [replace(records[0], payload={**records[0].payload, "姓名": "李四"})]
    with pytest.raises(grpc.RpcError) as caught:
        provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, changed, key)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "other content" in caught.value.details()


def test_a_replayed_batch_is_refused_and_changes_nothing(node: RunningNode):
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    batch = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(1)], key)
    provider.Ingest(as_proto(batch))
    with pytest.raises(grpc.RpcError) as caught:
        provider.Ingest(as_proto(batch))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS and batch.batch_id in caught.value.details()


@pytest.mark.parametrize(("case", "code", "words"), [
    ("unregistered key", grpc.StatusCode.INVALID_ARGUMENT, "not a registered key"),
    ("forged signature", grpc.StatusCode.INVALID_ARGUMENT, "does not verify"),
    ("records changed after signing", grpc.StatusCode.INVALID_ARGUMENT, "merkle_root"),
    ("another department's resource", grpc.StatusCode.PERMISSION_DENIED, "not responsible"),
    ("sent for another department", grpc.StatusCode.PERMISSION_DENIED, "records of department"),
    ("payload breaks the items", grpc.StatusCode.INVALID_ARGUMENT, "payload.出生日期"),
    ("unknown item", grpc.StatusCode.INVALID_ARGUMENT, "not an item"),
    ("oversized batch", grpc.StatusCode.RESOURCE_EXHAUSTED, "at most"),
    ("sequence going backwards", grpc.StatusCode.INVALID_ARGUMENT, "not after the last stored sequence"),
])
def test_bad_batches_get_a_clear_status_and_store_nothing(node: RunningNode, case: str, code, words: str):
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    records = [low_income_record(n) for n in range(5, 8)]
    batch = provider_batch(PROVIDER, LOW_INCOME, records, key)
    stub = provider
    if case == "unregistered key":
        stranger = Key()
        stranger.kid = "0123456789abcdef"
        batch = provider_batch(PROVIDER, LOW_INCOME, records, stranger)
    elif case == "forged signature":
        batch = replace(batch, signature=Key().sign(b"x"))
    elif case == "records changed after signing":
        batch = replace(batch, records=(replace(records[0], payload={**records[0].payload, "姓名": "王五"}),
                                        *records[1:]))
    elif case == "another department's resource":
        batch = provider_batch(PROVIDER, "311140004/000001", [], key)
        batch = replace(batch, records=tuple(records))
    elif case == "sent for another department":
        stub = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["provider"]))
    elif case == "payload breaks the items":
        bad = replace(records[0], payload={**records[0].payload, "出生日期": "1991-13-01"})
        batch = provider_batch(PROVIDER, LOW_INCOME, [bad, *records[1:]], key)
    elif case == "unknown item":
        bad = replace(records[0], payload={**records[0].payload, "银行卡号": "6222"})
        batch = provider_batch(PROVIDER, LOW_INCOME, [bad], key)
    elif case == "oversized batch":
        many = [replace(low_income_record(n)) for n in range(100, 100 + node.config.exchange.max_batch_records + 1)]
        batch = provider_batch(PROVIDER, LOW_INCOME, many, key)
    elif case == "sequence going backwards":
        provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [low_income_record(50)], key)))
        batch = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(40)], key)
    before = len(node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Ingest(as_proto(batch))
    assert caught.value.code() == code and words in caught.value.details(), caught.value.details()
    after = len(node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries)
    assert after == before  # nothing stored
    refused = node.node.audit.query(AuditFilter(result=code.name)).entries
    assert refused and refused[0].record.action == "ExchangeService/Ingest"


def test_gaps_in_sequence_numbers_are_accepted_and_reported(node: RunningNode):
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    answer = provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [low_income_record(n) for n in (1, 2, 5, 9)],
                                                     key)))
    assert answer.accepted == 4 and list(answer.sequence_gaps) == ["3-4", "6-8"]


def stream(stub: exchange_pb2_grpc.ExchangeServiceStub, batches: list) -> tuple[list[int], grpc.RpcError | None]:
    """IngestStream with every batch sent at once (the node checks one while it stores the one before)."""
    accepted: list[int] = []
    try:
        for answer in stub.IngestStream(iter([as_proto(b) for b in batches])):
            accepted.append(answer.accepted)
    except grpc.RpcError as error:
        return accepted, error
    return accepted, None


def stored_batches(node: RunningNode) -> int:
    return len(node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries)


def test_a_stream_answers_every_batch_before_the_first_refused_one_and_stores_nothing_after_it(node: RunningNode):
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    good = [provider_batch(PROVIDER, LOW_INCOME, [low_income_record(n)], key) for n in (1, 2)]
    forged = replace(provider_batch(PROVIDER, LOW_INCOME, [low_income_record(3)], key), signature=Key().sign(b"x"))
    later = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(4)], key)
    accepted, error = stream(provider, [*good, forged, later])
    assert accepted == [1, 1] and error is not None and "does not verify" in error.details()
    assert stored_batches(node) == 2


def test_a_stream_ends_with_a_batch_s_own_refusal_when_its_store_fails_before_the_next_is_checked(node: RunningNode):
    """Batch 2 passes every check but is a replay, which only the store sees; batch 3 was already checked
    beside it. The stream ends with batch 2's ALREADY_EXISTS, and batch 3 is not stored."""
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    first = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(1)], key)
    after = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(2)], key)
    accepted, error = stream(provider, [first, first, after])
    assert accepted == [1] and error is not None
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and first.batch_id in error.details()
    assert stored_batches(node) == 1


def test_the_merkle_root_a_provider_signs_is_the_one_the_node_recomputes():
    records = [low_income_record(n) for n in range(1, 4)]
    root = merkle.MerkleTree.from_leaves(batch_leaves(PROVIDER, LOW_INCOME, records)).root
    assert provider_batch(PROVIDER, LOW_INCOME, records, Key()).merkle_root == root




def inbound_put(node: RunningNode, body: bytes, content_type: str) -> None:
    from adapters.rabbit import declare_topology, names

    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        declare_topology(channel, node.config.node.id, [names(node.config.node.id)["in"]])
        channel.basic_publish("", names(node.config.node.id)["in"], body, pika.BasicProperties(
            content_type=content_type, delivery_mode=2, app_id="hhht-platform"))


def provider_envelope(key: Key, records: list[Record], batch_id: str | None = None) -> envelopes.Envelope:
    import datetime as dt

    return envelopes.seal(batch_id=batch_id or uuid.uuid4().hex, node_id="hhht-platform", provider_code=PROVIDER,
                          resource_code=LOW_INCOME, consumer_code=PROVIDER, records=records, signer=key,
                          now=dt.datetime.now(dt.UTC))


def test_a_platform_batch_on_the_inbound_queue_is_stored_and_relayed(node: RunningNode):
    from adapters.codecs import regional

    key = Key()
    register(node, key)
    grant_and_subscribe(node, ("hhht",))
    node.node.start_inbound()
    sealed = provider_envelope(key, [low_income_record(n) for n in range(1, 11)])
    inbound_put(node, regional.encode(sealed), regional.CONTENT_TYPE)
    messages = drain(f"exnode.{node.config.node.id}.out.hhht", 10)
    assert len(messages) == 10 and {h["x-exnode-batch-id"] for h, _ in messages} == {sealed.batch_id}
    relayed = [regional.decode(body) for _, body in messages]
    assert sorted(p.records[0].id for p in relayed) == sorted(r.id for r in sealed.records)
    assert all(envelopes.verify(p, {node.config.node.id: node.node.keys.public}) == [] for p in relayed)


@pytest.mark.parametrize("case", ["garbage", "forged signature", "unknown item"])
def test_poison_on_the_inbound_queue_is_dead_lettered_with_the_reason(node: RunningNode, case: str):
    from adapters.codecs import regional
    from adapters.rabbit import names

    key = Key()
    register(node, key)
    node.node.start_inbound()
    if case == "garbage":
        body, content_type, reason = b"\x00not an envelope", regional.CONTENT_TYPE, "undecodable"
    elif case == "forged signature":
        forger = Key()
        forger.kid = key.kid
        body = regional.encode(provider_envelope(forger, [low_income_record(1)]))
        content_type, reason = regional.CONTENT_TYPE, "BadSignature"
    else:
        bad = replace(low_income_record(1), payload={**low_income_record(1).payload, "银行卡号": "6222"})
        body, content_type, reason = regional.encode(provider_envelope(key, [bad])), regional.CONTENT_TYPE, "not an item"
    inbound_put(node, body, content_type)
    [(headers, dead)] = drain(names(node.config.node.id)["dlq"], 1)
    assert reason in headers["x-exnode-dead-letter-reason"] and dead == body
    assert node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries == []


def test_signed_receipts_mark_the_batch_receipted_and_forged_ones_are_refused(node: RunningNode):
    from node.services.exchange import receipt_message

    key = Key()
    register(node, key)
    grant_and_subscribe(node, ("hhht",))
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    batch = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(n) for n in range(1, 6)], key)
    provider.Ingest(as_proto(batch))
    ids = [codec_for("regional").decode(body).records[0].id
           for _, body in drain(f"exnode.{node.config.node.id}.out.hhht", 5)]
    receiver_key = Key()
    admin = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["catalog_admin"]))
    receiver_key.kid = admin.RegisterKey(pb.RegisterKeyRequest(department_code=CONSUMER, algorithm="Ed25519",
                                                               public_pem=receiver_key.pem)).key_id
    consumer = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    message = receipt_message(node.config.node.id, batch.batch_id, CONSUMER, ids)
    forged = pb.Receipt(batch_id=batch.batch_id, record_ids=ids, receiver_code=CONSUMER, key_id=receiver_key.kid,
                        signature=Key().sign(message))
    with pytest.raises(grpc.RpcError) as caught:
        consumer.SendReceipt(forged)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not verify" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        provider.SendReceipt(pb.Receipt(batch_id=batch.batch_id, record_ids=ids, receiver_code=PROVIDER,
                                        key_id=key.kid, signature=key.sign(message)))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED and "was not sent" in caught.value.details()
    consumer.SendReceipt(pb.Receipt(batch_id=batch.batch_id, record_ids=ids, receiver_code=CONSUMER,
                                    key_id=receiver_key.kid, signature=receiver_key.sign(message)))
    deadline = time.monotonic() + 10
    status = provider.GetDeliveryStatus(pb.DeliveryStatusRequest(batch_id=batch.batch_id))
    while status.state != "RECEIPTED" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = provider.GetDeliveryStatus(pb.DeliveryStatusRequest(batch_id=batch.batch_id))
    assert status.state == "RECEIPTED"



def test_records_for_a_retired_resource_are_refused(node: RunningNode):
    from exnode.v1 import catalog_pb2, catalog_pb2_grpc

    key = Key()
    register(node, key)
    catalog = catalog_pb2_grpc.CatalogServiceStub(node.channel_as(PROVIDER, ["catalog_admin"]))
    catalog.RetireResource(catalog_pb2.RetireResourceRequest(code=LOW_INCOME))
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    with pytest.raises(grpc.RpcError) as caught:
        provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [low_income_record(1)], key)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resource_code" in caught.value.details() and "RETIRED" in caught.value.details()


def test_a_batch_is_stored_with_its_calls_audit_entry_or_not_at_all(node: RunningNode,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """The call's OK entry commits in the batch's transaction: one entry per call, and when that entry
    cannot be written (here: the disk fills at that moment) the batch is refused and nothing is stored,
    so the caller's retry of the same records is accepted rather than reported as duplicates."""
    key = Key()
    register(node, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    first = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(1)], key)
    assert provider.Ingest(as_proto(first)).accepted == 1
    calls = node.node.audit.query(AuditFilter(action="ExchangeService/Ingest", result="OK")).entries
    assert len(calls) == 1 and f"batch {first.batch_id}: 1 stored, 0 duplicates" in calls[0].record.detail

    writer = node.node.audit_writer
    join = writer.join_batch

    def full(uow: object, records: list[AuditRecord]) -> None:
        if any(r.action == "ExchangeService/Ingest" for r in records):
            raise StorageFull("the database's disk is full: (the test's)")
        join(uow, records)

    monkeypatch.setattr(writer, "join_batch", full)
    records = [low_income_record(n) for n in (2, 3)]
    with pytest.raises(grpc.RpcError) as caught:
        provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key)))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    assert len(node.node.audit.query(AuditFilter(action="exchange/store-batch")).entries) == 1  # nothing stored
    monkeypatch.setattr(writer, "join_batch", join)
    retried = provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key)))
    assert (retried.accepted, retried.duplicates) == (2, 0)
    assert len(node.node.audit.query(AuditFilter(action="ExchangeService/Ingest", result="OK")).entries) == 2
