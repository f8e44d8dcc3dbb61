"""校核纠错 against the real broker on both databases: a consumer that received a record objects to it, the
record is served marked disputed in the pull, the provider corrects it through the normal ingest (the
correction reaches the subscriber over RabbitMQ) and the flag clears; who may object, what an objection
must carry, a confirmation needs reasons, late answers are recorded, and the quality score counts it."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pika
import pytest
from exnode.v1 import exchange_pb2, exchange_pb2_grpc, lists_pb2_grpc, query_pb2, query_pb2_grpc
from exnode.v1 import lists_pb2 as pb

from adapters.codecs.envelope import verify as envelope_verify
from adapters.platforms import codec_for
from catalog.objections import RecordKey
from catalog.records import Record
from node import bootstrap
from node.bootstrap import load_sample
from node.clients.pull import TrustedNode, pull
from node.pipeline import provider_batch
from tests.fault.support import AMQP, CONSUMER, LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import drain, grant_and_subscribe, register

STRANGER = "11100000MB0173295A"  # a department nothing was delivered to
ATTACHMENT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[RunningNode]:
    node_id = f"t{uuid.uuid4().hex[:10]}"
    data = tmp_path / "node"
    config = make_config(data, database_url)
    (data / "platforms.toml").write_text(
        f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n', encoding="utf-8")
    running = RunningNode(replace(config, node=replace(config.node, id=node_id)))
    load_sample(running.node)
    running.node.start_dispatcher()
    yield running
    running.close()
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        for suffix in ("out.hhht", "dlq", "in"):
            channel.queue_delete(f"exnode.{node_id}.{suffix}")
        channel.exchange_delete(f"exnode.{node_id}.dlx")


def lists_as(node: RunningNode, dept: str, *roles: str) -> lists_pb2_grpc.ListsServiceStub:
    return lists_pb2_grpc.ListsServiceStub(node.channel_as(dept, roles, f"{roles[0]}@{dept[-4:]}"))


def send(node: RunningNode, key: Key, records: list[Record]) -> str:
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    batch = provider_batch(PROVIDER, LOW_INCOME, records, key)
    assert provider.Ingest(as_proto(batch)).accepted == len(records)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # delivered = the broker confirmed it (the deliveries the node records)
        with node.node.uow() as uow:
            stored = uow.objections.record(RecordKey(PROVIDER, LOW_INCOME, records[0].id))
            if stored is not None and CONSUMER in uow.objections.delivered_to(stored):
                return batch.batch_id
        time.sleep(0.2)
    raise AssertionError("the batch was not delivered")


def pulled_disputed(node: RunningNode, out: Path, *, replay: bool = False) -> tuple[list[str], list[str]]:
    """The record ids the consumer's pull (from the beginning when ``replay``) received, and those it marks
    disputed."""
    stub = exchange_pb2_grpc.ExchangeServiceStub(node.raw_channel)
    metadata = [("authorization", f"Bearer {node.token(CONSUMER, ('consumer',))}")]
    outcome = pull(lambda requests: stub.Pull(requests, metadata=metadata),
                   TrustedNode(node.config.node.id, node.node.keys.public), out, replay=replay)
    manifest = json.loads((outcome.directory / "manifest.json").read_text(encoding="utf-8"))
    received, disputed = [], []
    for batch in manifest["batches"]:
        lines = (outcome.directory / batch["file"]).read_bytes().split(b"\n")
        received.extend(json.loads(line)["id"] for line in lines if line)
        disputed.extend(json.loads(lines[i])["id"] for i in batch.get("disputed", []))
    return received, disputed


def test_an_objection_flags_the_record_until_a_correction_through_ingest_clears_it(node: RunningNode, tmp_path):
    key = Key()
    register(node, key)
    grant_and_subscribe(node, ("hhht",))
    queue = f"exnode.{node.config.node.id}.out.hhht"
    send(node, key, [low_income_record(n) for n in (1, 2, 3)])
    assert len(drain(queue, 3)) == 3
    consumer, stranger = lists_as(node, CONSUMER, "consumer"), lists_as(node, STRANGER, "consumer")
    reviewer = lists_as(node, PROVIDER, "reviewer")
    for stub, record, code in ((stranger, "DB-000002", grpc.StatusCode.PERMISSION_DENIED),
                               (consumer, "DB-999999", grpc.StatusCode.PERMISSION_DENIED),
                               (consumer, "DB-000002", grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as refused:
            stub.RaiseObjection(pb.RaiseObjectionRequest(resource_code=LOW_INCOME, record_id=record,
                                                         evidence="" if stub is consumer else "金额有误"))
        assert refused.value.code() == code, refused.value.details()
        assert ("never delivered" if code == grpc.StatusCode.PERMISSION_DENIED else "evidence") \
            in refused.value.details()
    with pytest.raises(grpc.RpcError) as bad_hash:
        consumer.RaiseObjection(pb.RaiseObjectionRequest(resource_code=LOW_INCOME, record_id="DB-000002",
                                                         evidence="金额有误", attachments=["abc"]))
    assert bad_hash.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "attachments[0]" in bad_hash.value.details()
    objection = consumer.RaiseObjection(pb.RaiseObjectionRequest(
        resource_code=LOW_INCOME, record_id="DB-000002", item="月保障金额", evidence="民政局台账为1200元",
        attachments=[ATTACHMENT]))
    assert objection.state == pb.OBJECTION_OPEN and objection.deadline.seconds
    [(_, notice)] = drain(queue, 1)  # the relay re-publishes the record marked
    assert codec_for("regional").decode(notice).disputed == ("DB-000002",)
    assert pulled_disputed(node, tmp_path / "first") == (["DB-000001", "DB-000002", "DB-000003"], ["DB-000002"])
    # the provider corrects: a new record through the normal ingest, which every subscriber receives
    corrected = Record("DB-000004", 4, low_income_record(2).operation, {**low_income_record(2).payload,
                                                                         "月保障金额": 1200.0})
    with pytest.raises(grpc.RpcError) as too_early:
        reviewer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id, corrected_record_id="DB-000004"))
    assert too_early.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ingest" in too_early.value.details()
    send(node, key, [corrected])
    [(headers, body)] = drain(queue, 1)
    assert codec_for("regional").decode(body).records[0].payload["月保障金额"] == 1200.0
    with pytest.raises(grpc.RpcError) as wrong_party:
        consumer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id, corrected_record_id="DB-000004"))
    assert wrong_party.value.code() == grpc.StatusCode.PERMISSION_DENIED
    answered = reviewer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id, corrected_record_id="DB-000004",
                                                                  reason="台账核实后更正"))
    assert answered.state == pb.OBJECTION_CORRECTED and answered.corrected_by == "DB-000004" and not answered.late
    received, disputed = pulled_disputed(node, tmp_path / "second", replay=True)
    assert len(received) == 4 and "DB-000002" in received and disputed == []
    [score] = [s for s in consumer.QualityScores(pb.QualityRequest(provider_code=PROVIDER)).scores
               if s.resource_code == LOW_INCOME]
    assert (score.records, score.objections, score.upheld, score.open) == (4, 1, 1, 0)
    assert score.upheld_per_10k == 2500.0


def test_a_confirmation_gives_reasons_and_an_unchecked_objection_escalates(node: RunningNode):
    key = Key()
    register(node, key)
    grant_and_subscribe(node, ("hhht",))
    send(node, key, [low_income_record(1)])
    consumer, reviewer = lists_as(node, CONSUMER, "consumer"), lists_as(node, PROVIDER, "reviewer")
    objection = consumer.RaiseObjection(pb.RaiseObjectionRequest(resource_code=LOW_INCOME, record_id="DB-000001",
                                                                 evidence="姓名与户籍不符"))
    with pytest.raises(grpc.RpcError) as unreasoned:
        reviewer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id))
    assert unreasoned.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in unreasoned.value.details()
    deadline = objection.deadline.ToDatetime(tzinfo=dt.UTC)
    node.node.lists.clock = lambda: deadline + dt.timedelta(hours=1)  # the node's clock passes the deadline
    assert bootstrap.run_housekeeping(node.node)["objections_escalated"] == [objection.id]
    listed = consumer.ListObjections(pb.ListObjectionsRequest(state=pb.OBJECTION_OPEN)).objections
    assert [o.id for o in listed] == [objection.id] and listed[0].escalated_at.seconds
    confirmed = reviewer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id, reason="经户籍系统核对无误"))
    assert confirmed.state == pb.OBJECTION_CONFIRMED and confirmed.late
    with pytest.raises(grpc.RpcError) as again:
        reviewer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id, reason="再次"))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert exchange_pb2.PullBatch(disputed=[1]).disputed == [1]


WANG, LI = "360426199101010071", "11010519491231002X"
PLATFORMS = {"hhht": "regional", "hhht-xml": "ministry", "hhht-pb": "department"}


@pytest.fixture
def subscribed_node(tmp_path: Path, database_url: str) -> Iterator[RunningNode]:
    """A node whose consumer subscribes through three platforms, one per wire format."""
    node_id = f"t{uuid.uuid4().hex[:10]}"
    data = tmp_path / "node"
    config = make_config(data, database_url)
    (data / "platforms.toml").write_text("".join(
        f'[[platform]]\nname = "{name}"\nkind = "{kind}"\nconsumer_code = "{CONSUMER}"\n'
        for name, kind in PLATFORMS.items()), encoding="utf-8")
    running = RunningNode(replace(config, node=replace(config.node, id=node_id)))
    load_sample(running.node)
    running.node.start_dispatcher()
    yield running
    running.close()
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        for suffix in [f"out.{name}" for name in PLATFORMS] + ["dlq", "in"]:
            channel.queue_delete(f"exnode.{node_id}.{suffix}")
        channel.exchange_delete(f"exnode.{node_id}.dlx")


def each_platform(node: RunningNode, expected: int) -> dict[str, list]:
    """Every platform's decoded envelopes (``expected`` each), verified against the node's keys."""
    trusted = {node.config.node.id: node.node.keys.public}
    out = {}
    for name, kind in PLATFORMS.items():
        messages = drain(f"exnode.{node.config.node.id}.out.{name}", expected)
        envelopes = [codec_for(kind).decode(body) for _, body in messages]
        assert len(envelopes) == expected, name
        assert all(envelope_verify(e, trusted) == [] for e in envelopes)
        out[name] = envelopes
    return out


def test_the_disputed_mark_reaches_every_subscriber_and_queries_and_verdicts_answer_with_it(
        subscribed_node: RunningNode):
    """Objection raised → every platform gets the record again marked disputed (signature unchanged), a
    query and a signed verdict answer with the mark; correction through ingest → every platform gets the
    corrected record, the answer re-publishes the original unmarked, and the query answers unmarked."""
    node = subscribed_node
    key = Key()
    register(node, key)
    grant_and_subscribe(node, tuple(PLATFORMS))
    consumer, reviewer = lists_as(node, CONSUMER, "consumer"), lists_as(node, PROVIDER, "reviewer")
    verify_demand = consumer.FileDemand(pb.FileDemandRequest(demand=pb.Demand(
        resource_code=LOW_INCOME, purpose="低保资格核验", legal_basis="社会救助暂行办法", contact="王芳",
        items=["姓名", "月保障金额"], kind="VERIFY")))
    reviewer.DecideDemand(pb.DecideDemandRequest(id=verify_demand.id, approve=True))
    records = [Record(r.id, r.sequence, r.operation, {**r.payload, "公民身份号码": number})
               for r, number in ((low_income_record(1), WANG), (low_income_record(2), LI))]
    send(node, key, records)
    first = each_platform(node, 2)
    assert {name: [e.records[0].id for e in got] for name, got in first.items()} == \
        {name: ["DB-000001", "DB-000002"] for name in PLATFORMS}
    query = query_pb2_grpc.QueryServiceStub(node.channel_as(CONSUMER, ["consumer"]))

    def asked() -> tuple[bool, bool, dict]:
        [found] = query.QueryRecords(query_pb2.QueryRecordsRequest(
            resource_code=LOW_INCOME, keys=[query_pb2.RecordKey(values={"公民身份号码": WANG})])).results
        verdict = query.VerifyClaim(query_pb2.VerifyClaimRequest(
            resource_code=LOW_INCOME, key=query_pb2.RecordKey(values={"公民身份号码": WANG}),
            claims=[query_pb2.AssertedItem(item="月保障金额", value="= 1200")]))
        return found.disputed, verdict.disputed, json.loads(verdict.document)

    assert asked()[:2] == (False, False)
    objection = consumer.RaiseObjection(pb.RaiseObjectionRequest(
        resource_code=LOW_INCOME, record_id="DB-000001", item="月保障金额", evidence="民政局台账为1200元"))
    for name, [notice] in each_platform(node, 1).items():
        assert notice.records[0] == first[name][0].records[0], name  # the same record as delivered, masked alike
        assert notice.disputed == ("DB-000001",), name
    found_disputed, verdict_disputed, document = asked()
    assert found_disputed and verdict_disputed and document["disputed"] is True  # inside the signed document

    corrected = Record("DB-000003", 3, records[0].operation, {**records[0].payload, "月保障金额": 1200.0})
    send(node, key, [corrected])
    for name, [envelope] in each_platform(node, 1).items():
        assert envelope.records[0].id == "DB-000003" and envelope.disputed == (), name
        assert envelope.records[0].payload["月保障金额"] == 1200.0
    reviewer.AnswerObjection(pb.AnswerObjectionRequest(id=objection.id, corrected_record_id="DB-000003",
                                                       reason="台账核实后更正"))
    for name, [cleared] in each_platform(node, 1).items():
        assert cleared.records[0].id == "DB-000001" and cleared.disputed == (), name
    found_disputed, verdict_disputed, document = asked()
    assert (found_disputed, verdict_disputed, document["disputed"]) == (False, False, False)
    with node.node.uow() as uow:  # the notices are no deliveries: the responsibility list counts 2 batches
        assert uow.exchange.get_batch(f"{objection.id}.raised") is None
