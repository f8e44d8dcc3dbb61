"""A request across two tiers over the real RabbitMQ: the top node asks about a resource the bottom node
holds through the middle node its entry came from; the middle relays (signed, one more hop), the bottom
answers under its own grants, and the top checks the whole chain of hops (each relayed answer signed by its
node and unchanged) before answering its caller. A middle node that alters the answer is caught."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pika
import pytest
from exnode.v1 import exchange_pb2_grpc, query_pb2_grpc
from exnode.v1 import query_pb2 as pb

from catalog.records import Record
from node.bootstrap import load_sample
from node.grpc.server import _status_name
from node.pipeline import provider_batch
from node.services.remote import ANSWER_CONTEXT, _open, _sign, check_chain
from node.storage.audit_repository import AuditFilter
from security.keys import KeyStore, public_keys_document
from tests.fault.support import (
    AMQP,
    CONSUMER,
    LOW_INCOME,
    PROVIDER,
    Key,
    as_proto,
    low_income_record,
    wait_until,
)
from tests.integration.grpc_node import RunningNode
from tests.integration.test_exchange_relay import register
from tests.integration.test_remote_verify import WANG, _config, verification_grant


def _trust(config, *others: tuple[object, str]) -> None:
    peers = config.path(config.exchange.peers_dir)
    peers.mkdir(parents=True, exist_ok=True)
    for other_config, other_id in others:
        (peers / f"{other_id}.json").write_text(json.dumps(public_keys_document(
            KeyStore.load(other_config.keys_dir), other_id)), encoding="utf-8")


@pytest.fixture
def tiers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[RunningNode, RunningNode, RunningNode]]:
    ids = [f"t{tier}{uuid.uuid4().hex[:8]}" for tier in ("b", "m", "t")]
    bottom_config = _config(tmp_path, "bottom", ids[0], postgres_url)
    middle_config = _config(tmp_path, "middle", ids[1], "")
    top_config = _config(tmp_path, "top", ids[2], "")
    _trust(bottom_config, (middle_config, ids[1]))  # the bottom knows only its upper neighbour
    _trust(middle_config, (bottom_config, ids[0]), (top_config, ids[2]))
    _trust(top_config, (bottom_config, ids[0]), (middle_config, ids[1]))  # the top checks every hop
    nodes = [RunningNode(c) for c in (bottom_config, middle_config, top_config)]
    bottom, middle, top = nodes
    try:
        load_sample(bottom.node)
        with bottom.node.uow() as uow:
            entry = uow.catalog.get(LOW_INCOME)
        now = dt.datetime.now(dt.UTC)
        with middle.node.uow(write=True) as uow:  # what the tier uplinks bring up, hop by hop
            uow.catalog.put_foreign(entry, ids[0], now, via_node=ids[0])
            uow.commit()
        with top.node.uow(write=True) as uow:
            uow.catalog.put_foreign(entry, ids[0], now, via_node=ids[1])
            uow.commit()
        key = Key()
        register(bottom, key)
        record = low_income_record(1)
        exchange_pb2_grpc.ExchangeServiceStub(bottom.channel_as(PROVIDER, ["provider"])).Ingest(as_proto(
            provider_batch(PROVIDER, LOW_INCOME, [Record(record.id, 1, record.operation, {
                **record.payload, "公民身份号码": WANG, "姓名": "王芳"})], key)))
        for running in nodes:
            running.node.start_rpc(_status_name, timeout_s=60)
        yield bottom, middle, top
    finally:
        for running in nodes:
            running.close()
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
            channel = connection.channel()
            for node_id in ids:
                for suffix in ("rpc", "rpc-reply", "dlq"):
                    channel.queue_delete(f"exnode.{node_id}.{suffix}")
                channel.exchange_delete(f"exnode.{node_id}.dlx")


def test_a_request_routed_across_two_tiers_is_answered_by_the_bottom_and_its_chain_checked(tiers):
    from tests.integration.test_query_verify import demand

    bottom, middle, top = tiers
    b, m, t = (n.config.node.id for n in tiers)
    stub = query_pb2_grpc.QueryServiceStub(top.channel_as(CONSUMER, ["consumer"]))
    grant = verification_grant(bottom, ("姓名",))
    verdict = stub.VerifyClaim(pb.VerifyClaimRequest(resource_code=LOW_INCOME, key=pb.RecordKey(
        values={"公民身份号码": WANG}), claims=[pb.AssertedItem(item="姓名", value="王芳")]), timeout=90)
    assert [a.result for a in verdict.answers] == [pb.MATCH]
    assert json.loads(verdict.document)["node"] == b and verdict.grant_id == grant  # the bottom's verdict
    with pytest.raises(grpc.RpcError) as refused:  # the bottom's grants decide, through the middle
        stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[
            pb.RecordKey(values={"公民身份号码": WANG})]), timeout=90)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED and f"node {b}" in refused.value.details()
    demand(bottom, items=("姓名",))
    answer = stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[
        pb.RecordKey(values={"公民身份号码": WANG})]), timeout=90)
    assert json.loads(answer.results[0].payload) == {"姓名": "王芳"}
    assert answer.answered_by == f"{b} via {m}"

    wait_until(lambda: len(middle.node.audit.query(AuditFilter(action="rpc/Relay")).entries) == 3, 30,
               "the middle node's relay entries")
    relayed = middle.node.audit.query(AuditFilter(action="rpc/Relay")).entries
    assert all(e.record.peer == f"node:{t}" for e in relayed)
    answered = bottom.node.audit.query(AuditFilter(action="rpc/VerifyClaim")).entries
    answered += bottom.node.audit.query(AuditFilter(action="rpc/QueryRecords")).entries
    assert len(answered) == 3 and all(e.record.peer == f"node:{m}" for e in answered)  # it saw only the middle


def test_a_middle_node_that_changes_the_answer_or_the_hops_is_caught_by_the_requester(tiers):
    bottom, middle, top = tiers
    b, m, t = (n.config.node.id for n in tiers)
    request_id = uuid.uuid4().hex
    inner = {"format": "exnode-rpc-answer/1", "id": request_id, "from": b, "to": m, "status": "PERMISSION_DENIED",
             "message": "no grant", "at": dt.datetime.now(dt.UTC).isoformat()}
    inner_body = _sign(ANSWER_CONTEXT, inner, bottom.node.keys.active, "answer")

    def outer(**changes: object) -> dict:
        document = {**inner, "from": m, "to": t, "hops": [t, m, b], "relayed": json.loads(inner_body), **changes}
        opened, problem = _open(ANSWER_CONTEXT, _sign(ANSWER_CONTEXT, document, middle.node.keys.active, "answer"),
                                "answer", top.node.peers)
        assert problem is None
        return opened

    assert check_chain(outer(), [t], b, request_id, top.node.peers) is None
    changed = check_chain(outer(status="OK"), [t], b, request_id, top.node.peers)
    assert changed is not None and f"node {m} changed status" in changed
    skipped = check_chain(outer(hops=[t, b]), [t], b, request_id, top.node.peers)
    assert skipped is not None and "chain of hops" in skipped
    forged = json.loads(inner_body)
    forged["answer"]["status"] = "OK"
    bad = check_chain(outer(status="OK", relayed=forged), [t], b, request_id, top.node.peers)
    assert bad is not None and "does not verify" in bad
