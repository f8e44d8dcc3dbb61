"""Verification across nodes over the real RabbitMQ: a claim about a resource a lower node holds is asked of
that node (its grants, quota and signature), at most once, never after its deadline; both nodes audit."""

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
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc, query_pb2_grpc
from exnode.v1 import query_pb2 as pb

from catalog.records import Record
from node.bootstrap import load_sample
from node.pipeline import provider_batch
from node.services.remote import REQUEST_CONTEXT, _open, _sign
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
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import register

WANG = "360426199101010071"


def _config(tmp_path: Path, name: str, node_id: str, url: str):
    config = make_config(tmp_path / name, url)
    return replace(config, node=replace(config.node, id=node_id),
                   exchange=replace(config.exchange, dispatch=False))


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RunningNode, RunningNode]]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    lower_id, upper_id = f"tl{uuid.uuid4().hex[:8]}", f"tu{uuid.uuid4().hex[:8]}"
    lower_config, upper_config = _config(tmp_path, "lower", lower_id, url), _config(tmp_path, "upper", upper_id, "")
    for config, other_config, other_id in ((lower_config, upper_config, upper_id), (upper_config, lower_config, lower_id)):
        peers = config.path(config.exchange.peers_dir)
        peers.mkdir(parents=True, exist_ok=True)
        (peers / f"{other_id}.json").write_text(json.dumps(public_keys_document(
            KeyStore.load(other_config.keys_dir), other_id)), encoding="utf-8")
    lower, upper = RunningNode(lower_config), RunningNode(upper_config)
    try:
        load_sample(lower.node)
        with lower.node.uow() as uow:
            entry = uow.catalog.get(LOW_INCOME)
        with upper.node.uow(write=True) as uow:  # what the tier uplink brings up: a read-only foreign entry
            uow.catalog.put_foreign(entry, lower_id, dt.datetime.now(dt.UTC))
            uow.commit()
        key = Key()
        register(lower, key)
        record = low_income_record(1)
        stub = exchange_pb2_grpc.ExchangeServiceStub(lower.channel_as(PROVIDER, ["provider"]))
        stub.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, [Record(
            record.id, 1, record.operation, {**record.payload, "公民身份号码": WANG, "姓名": "王芳"})], key)))
        for running in (lower, upper):
            running.start_rpc(timeout_s=60)  # a loaded CI machine: the first answer waits for the consumer
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


def answerer(lower: RunningNode, upper: RunningNode):
    """The lower node's request handler as the broker reaches it: the request sealed to it, its answer
    opened by the upper node (both as ``exnode-sealed/1``)."""
    from security.broker_sealing import open_message, parse_entry, public_entry, seal_message

    to = parse_entry(public_entry(lower.node.encryption))

    def handle(body: bytes) -> bytes:
        reply = lower.node.rpc_responder.handle(seal_message(body, lower.config.node.id, to))
        return open_message(reply, upper.config.node.id, upper.node.encryption)

    return handle


def verification_grant(node: RunningNode, items: tuple[str, ...], quota: int = 0) -> str:
    consumer = lists_pb2_grpc.ListsServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
    filed = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格核验", legal_basis="社会救助暂行办法", contact="王芳",
        items=list(items), kind="VERIFY", daily_quota=quota)))
    return reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=filed.id, approve=True)).grant_id


def claim(node: RunningNode, **asserted: str) -> pb.Verdict:
    stub = query_pb2_grpc.QueryServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    return stub.VerifyClaim(pb.VerifyClaimRequest(
        resource_code=LOW_INCOME, key=pb.RecordKey(values={"公民身份号码": WANG}),
        claims=[pb.AssertedItem(item=item, value=value) for item, value in asserted.items()]), timeout=90)


def test_a_claim_about_a_lower_nodes_resource_is_answered_and_signed_by_that_node(pair):
    lower, upper = pair
    with pytest.raises(grpc.RpcError) as refused:  # the lower node's grants decide, not the upper's
        claim(upper, 姓名="王芳")
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert f"node {lower.config.node.id}" in refused.value.details()
    assert "no verification grant" in refused.value.details()
    grant = verification_grant(lower, ("姓名",))
    verdict = claim(upper, 姓名="王 芳")
    assert [a.result for a in verdict.answers] == [pb.MATCH]
    document = json.loads(verdict.document)
    assert document["node"] == lower.config.node.id and document["grant"] == grant
    with pytest.raises(grpc.RpcError) as outside:
        claim(upper, 月保障金额="≤ 1200")
    assert outside.value.code() is grpc.StatusCode.PERMISSION_DENIED and grant in outside.value.details()
    answered = lower.node.audit.query(AuditFilter(action="rpc/VerifyClaim")).entries
    assert {e.record.result for e in answered} == {"OK", "PERMISSION_DENIED"}
    assert all(e.record.peer == f"node:{upper.config.node.id}" for e in answered)
    asked = upper.node.audit.query(AuditFilter(action="QueryService/VerifyClaim", result="OK")).entries
    assert f"answered by node {lower.config.node.id}" in asked[0].record.detail
    assert not any(WANG in e.record.detail for e in answered + asked)


def test_a_redelivered_request_gets_the_stored_answer_and_an_expired_one_is_never_processed(pair):
    lower, upper = pair
    grant = verification_grant(lower, ("姓名",))
    answerer_handle = answerer(lower, upper)
    now = dt.datetime.now(dt.UTC)

    def request(deadline: dt.datetime) -> bytes:
        return _sign(REQUEST_CONTEXT, {
            "format": "exnode-rpc/1", "id": uuid.uuid4().hex, "kind": "verify", "from": upper.config.node.id,
            "to": lower.config.node.id, "deadline": deadline.isoformat(), "consumer": CONSUMER,
            "subject": "tester", "roles": ["consumer"], "resource": LOW_INCOME, "key": {"公民身份号码": WANG},
            "claims": [{"item": "姓名", "value": "王芳"}]}, upper.node.keys.active, "request")

    body = request(now + dt.timedelta(minutes=1))
    first = answerer_handle(body)
    assert answerer_handle(body) == first  # at-most-once: the stored answer again
    assert lower.node.query.usage(grant)[0] == 1
    answer, problem = _open(b"exnode-rpc-answer/1\n", first, "answer", upper.node.peers)
    assert problem is None and answer["status"] == "OK"
    late, _ = _open(b"exnode-rpc-answer/1\n", answerer_handle(request(now - dt.timedelta(seconds=1))), "answer",
                    upper.node.peers)
    assert late["status"] == "DEADLINE_EXCEEDED"
    assert lower.node.query.usage(grant)[0] == 1  # not processed
    forged = json.loads(body)
    forged["request"]["consumer"] = "11100000MB01284764"
    denied, _ = _open(b"exnode-rpc-answer/1\n", answerer_handle(json.dumps(forged).encode()), "answer",
                      upper.node.peers)
    assert denied["status"] == "PERMISSION_DENIED" and "does not verify" in denied["message"]


def test_a_crash_between_counting_and_storing_the_answer_never_counts_a_redelivery_twice(pair, monkeypatch):
    """The quota's count and the stored answer commit together: a crash while storing the answer (here the
    store raising, as a kill -9 would stop it) leaves neither, so the redelivered request counts once."""
    from node.storage.verification_repository import VerificationRepository

    lower, upper = pair
    grant = verification_grant(lower, ("姓名",))
    body = _sign(REQUEST_CONTEXT, {
        "format": "exnode-rpc/1", "id": uuid.uuid4().hex, "kind": "verify", "from": upper.config.node.id,
        "to": lower.config.node.id, "deadline": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat(),
        "consumer": CONSUMER, "subject": "tester", "roles": ["consumer"], "resource": LOW_INCOME,
        "key": {"公民身份号码": WANG}, "claims": [{"item": "姓名", "value": "王芳"}]}, upper.node.keys.active, "request")
    store = VerificationRepository.store_answer

    class Crash(Exception):
        pass

    def crash(self, *args, **kwargs):
        raise Crash("killed while storing the answer")

    monkeypatch.setattr(VerificationRepository, "store_answer", crash)
    handle = answerer(lower, upper)
    with pytest.raises(Exception):  # noqa: B017 - the answerer's transient error (the request is requeued)
        handle(body)
    assert lower.node.query.usage(grant)[0] == 0  # nothing counted without its answer
    monkeypatch.setattr(VerificationRepository, "store_answer", store)
    first = handle(body)  # the broker's redelivery
    assert handle(body) == first
    assert lower.node.query.usage(grant)[0] == 1
    answer, problem = _open(b"exnode-rpc-answer/1\n", first, "answer", upper.node.peers)
    assert problem is None and answer["status"] == "OK" and answer["used_today"] == 1


def test_an_exnode_node_answers_a_household_check_as_a_department_from_its_granted_records(pair):
    from catalog.checks import Member, TargetState
    from security.identity import Principal
    from tests.integration.test_household_check import capture
    from tests.integration.test_query_verify import demand
    from tests.message_schema import assert_conforms

    lower, upper = pair
    sent, received = capture(upper.node.checks)
    centre = Principal("核对中心", CONSUMER, frozenset({"consumer"}))
    target = [(lower.config.node.id, "民政")]
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)

    def filed_and_answered() -> object:
        check = upper.node.checks.file_check(centre, [Member(WANG, "王芳")], "低保核对", "SQ2026-7", target, deadline)
        for _ in range(200):
            state = upper.node.checks.get_check(centre, check.id).targets[0]
            if state.state is not TargetState.PENDING:
                return state
            time.sleep(0.1)
        raise AssertionError("no answer")

    refused = filed_and_answered()
    assert refused.state is TargetState.REFUSED and "holds no live grant" in refused.reason
    demand(lower, items=("姓名", "公民身份号码", "月保障金额"))
    answered = filed_and_answered()
    assert answered.state is TargetState.ANSWERED
    (finding,) = answered.findings
    assert finding["id_number"] == WANG
    assert finding["items"]["城乡最低生活保障对象信息·公民身份号码"] == "360426********0071"  # masked per the grant
    assert finding["items"]["城乡最低生活保障对象信息·月保障金额"] == 1234.5
    assert len(sent) == 2 and len(received) == 2  # an exnode department speaks the published format too
    for body in sent + received:
        assert_conforms(body, {lower.config.node.id: lower.node.encryption,
                               upper.config.node.id: upper.node.encryption})
    entries = lower.node.audit.query(AuditFilter(action="rpc/HouseholdCheck")).entries
    assert {e.record.result for e in entries} == {"ANSWERED", "REFUSED"}
    from tests.integration.test_household_check import database_blob

    for node, what, secrets in ((lower, "the answering node (its stored answers)", (WANG, "360426********0071")),
                                (upper, "the asking node (the check)", (WANG, "360426********0071", "王芳"))):
        blob, where = database_blob(node.config.database_url)  # (王芳 is also the demand's contact on the lower)
        found = [s for s in secrets if s.encode() in blob]
        assert not found, f"{what}: {where} holds {found} in clear"


def test_a_query_for_a_lower_nodes_resource_is_answered_by_that_node_masked_per_its_grant(pair):
    from tests.integration.test_query_verify import demand

    lower, upper = pair
    stub = query_pb2_grpc.QueryServiceStub(upper.channel_as(CONSUMER, ["consumer"]))

    def ask(*numbers: str) -> pb.QueryRecordsResponse:
        return stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[
            pb.RecordKey(values={"公民身份号码": number}) for number in numbers]), timeout=90)

    with pytest.raises(grpc.RpcError) as refused:  # the lower node's grants decide, not the upper's
        ask(WANG)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert f"node {lower.config.node.id}" in refused.value.details()
    with pytest.raises(grpc.RpcError) as malformed:  # refused here: a bad key never travels
        ask("36042619910101007X")
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "keys[0]" in malformed.value.details()
    grant = demand(lower, items=("姓名", "公民身份号码", "月保障金额"))
    answer = ask(WANG, "110101199003077774")
    assert answer.grant_id == grant
    found, missing = answer.results
    assert found.status == pb.KeyResult.FOUND and missing.status == pb.KeyResult.NOT_FOUND
    payload = json.loads(found.payload)
    assert payload["公民身份号码"] == "360426********0071"  # masked per the lower node's grant
    assert payload["月保障金额"] == 1234.5 and set(payload) == {"姓名", "公民身份号码", "月保障金额"}
    wait_until(lambda: len(lower.node.audit.query(AuditFilter(action="rpc/QueryRecords")).entries) == 2 and
               upper.node.audit.query(AuditFilter(action="QueryService/QueryRecords", result="OK")).entries,
               30, "both nodes' audit entries")  # the audit writer appends after the answer went out
    answered = lower.node.audit.query(AuditFilter(action="rpc/QueryRecords")).entries
    assert sorted(e.record.result for e in answered) == ["OK", "PERMISSION_DENIED"]
    assert all(e.record.peer == f"node:{upper.config.node.id}" for e in answered)
    assert found.key_hash[:16] in next(e for e in answered if e.record.result == "OK").record.detail
    asked = upper.node.audit.query(AuditFilter(action="QueryService/QueryRecords", result="OK")).entries
    assert f"answered by node {lower.config.node.id}" in asked[0].record.detail
    assert not any(WANG in e.record.detail for e in answered + asked)


def test_a_redelivered_query_gets_the_stored_answer_and_an_expired_one_is_never_processed(pair):
    from tests.integration.test_query_verify import demand

    lower, upper = pair
    demand(lower, items=("姓名",))
    now = dt.datetime.now(dt.UTC)

    def request(deadline: dt.datetime) -> bytes:
        return _sign(REQUEST_CONTEXT, {
            "format": "exnode-rpc/1", "id": uuid.uuid4().hex, "kind": "query", "from": upper.config.node.id,
            "to": lower.config.node.id, "deadline": deadline.isoformat(), "consumer": CONSUMER,
            "subject": "tester", "roles": ["consumer"], "resource": LOW_INCOME, "keys": [{"公民身份号码": WANG}]},
            upper.node.keys.active, "request")

    handle = answerer(lower, upper)
    body = request(now + dt.timedelta(minutes=1))
    first = handle(body)
    assert handle(body) == first  # the stored answer, not a second query
    answer, problem = _open(b"exnode-rpc-answer/1\n", first, "answer", upper.node.peers)
    assert problem is None and answer["status"] == "OK" and answer["results"][0]["payload"] == {"姓名": "王芳"}
    late, _ = _open(b"exnode-rpc-answer/1\n", handle(request(now - dt.timedelta(seconds=1))), "answer",
                    upper.node.peers)
    assert late["status"] == "DEADLINE_EXCEEDED" and "results" not in late
    wait_until(lambda: len(lower.node.audit.query(AuditFilter(action="rpc/QueryRecords")).entries) >= 2, 30,
               "the answering node's audit entries")
    entries = lower.node.audit.query(AuditFilter(action="rpc/QueryRecords")).entries
    assert sorted(e.record.result for e in entries) == ["DEADLINE_EXCEEDED", "OK"]  # one each: the redelivery is not


def test_a_routed_query_for_a_consumer_with_an_encryption_key_crosses_the_broker_sealed(pair):
    from sqlalchemy import select

    from node.services.query import QUERY_AAD, query_context
    from node.storage.tables import rpc_answers
    from security.sealing import ConsumerPrivateKey
    from tests.integration.test_query_verify import demand
    from tests.integration.test_secrecy_to_consumer import register_encryption_key

    lower, upper = pair
    demand(lower, items=("姓名", "公民身份号码"))
    verification_grant(lower, ("姓名",))
    private = ConsumerPrivateKey.generate()
    kid = register_encryption_key(upper, private)  # registered where the consumer calls: the upper node
    stub = query_pb2_grpc.QueryServiceStub(upper.channel_as(CONSUMER, ["consumer"]))
    answer = stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[
        pb.RecordKey(values={"公民身份号码": WANG})]), timeout=90)
    assert answer.answered_by == lower.config.node.id and answer.sealing["x-exnode-enc-kid"] == kid
    (found,) = answer.results
    opened = private.open(dict(answer.sealing), query_context(answer.request_id, kid), QUERY_AAD.format(index=0),
                          found.payload)
    assert json.loads(opened) == {"姓名": "王芳", "公民身份号码": "360426********0071"}
    with lower.node.uow() as uow:  # what the lower node sent over the broker (and keeps for redeliveries)
        stored = [bytes(r.answer) for r in uow.connection.execute(select(rpc_answers.c.answer))]
    assert stored and not any("王芳".encode() in body or b"0071" in body for body in stored)
    verdict = claim(upper, 姓名="王芳")  # the upper node checks the lower node's verdict, then seals it
    assert verdict.sealed and not verdict.answers


def test_routed_requests_and_answers_cross_the_broker_sealed_to_their_one_reader(pair):
    """Read off the broker itself: the request on the answering node's queue and the answer it sends back
    hold no ID number, name or asserted value in clear (sealed to that node, then to the asker), and the
    caller still gets its verdict and its records."""
    import threading

    from tests.integration.test_query_verify import demand

    lower, upper = pair
    verification_grant(lower, ("姓名",))
    demand(lower, items=("姓名", "公民身份号码"))
    lower.node.rpc_responder.stop()  # the test takes the requests off the queue itself
    secrets = (WANG.encode(), "王芳".encode(), b"0071")
    results: dict[str, object] = {}
    query = query_pb2_grpc.QueryServiceStub(upper.channel_as(CONSUMER, ["consumer"]))
    calls = {
        "verify": lambda: claim(upper, 姓名="王芳"),
        "query": lambda: query.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[
            pb.RecordKey(values={"公民身份号码": WANG})]), timeout=90)}
    for name, call in calls.items():
        thread = threading.Thread(target=lambda n=name, c=call: results.__setitem__(n, c()), daemon=True)
        thread.start()
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
            channel = connection.channel()
            for _ in range(300):
                method, properties, body = channel.basic_get(f"exnode.{lower.config.node.id}.rpc")
                if method is not None:
                    break
                time.sleep(0.1)
            assert method is not None, "no request reached the answering node's queue"
            assert json.loads(body)["sealed"]["to"] == lower.config.node.id
            assert not any(s in body for s in secrets), f"the {name} request crosses the broker in clear"
            reply = lower.node.rpc_responder.handle(body)  # what the node's responder publishes
            assert json.loads(reply)["sealed"]["to"] == upper.config.node.id
            assert not any(s in reply for s in secrets), f"the {name} answer crosses the broker in clear"
            channel.basic_publish("", properties.reply_to, reply,
                                  pika.BasicProperties(correlation_id=properties.correlation_id))
            channel.basic_ack(method.delivery_tag)
        thread.join(60)
    assert [a.result for a in results["verify"].answers] == [pb.MATCH]
    (found,) = results["query"].results
    assert found.status == pb.KeyResult.FOUND and json.loads(found.payload)["姓名"] == "王芳"
    refused = lower.node.rpc_responder.handle(_sign(REQUEST_CONTEXT, {  # in clear: refused unread
        "format": "exnode-rpc/1", "id": uuid.uuid4().hex, "kind": "verify", "from": upper.config.node.id},
        upper.node.keys.active, "request"))
    assert json.loads(refused)["answer"]["status"] == "PERMISSION_DENIED"
    assert "sealed" in json.loads(refused)["answer"]["message"]


def test_a_direct_request_whose_requester_is_not_proven_is_refused_audited_and_counts_nothing(pair):
    """Unrouted, the request's own signature is the requester's identity claim: unsigned, or from a node
    the answering node has no key of → UNAUTHENTICATED; a department rewritten under the signature →
    PERMISSION_DENIED. Each is audited and counts nothing; the genuine request is then answered."""
    lower, upper = pair
    grant = verification_grant(lower, ("姓名",))
    from security.broker_sealing import open_message, parse_entry, public_entry, seal_message

    to = parse_entry(public_entry(lower.node.encryption))
    document = {
        "format": "exnode-rpc/1", "id": uuid.uuid4().hex, "kind": "verify", "from": upper.config.node.id,
        "to": lower.config.node.id, "deadline": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat(),
        "consumer": CONSUMER, "subject": "tester", "roles": ["consumer"], "resource": LOW_INCOME,
        "key": {"公民身份号码": WANG}, "claims": [{"item": "姓名", "value": "王芳"}],
        "reply_key": upper.node.rpc_responder.handle.__self__.sealing.reply_key}

    def status(body: bytes, reader: str = upper.config.node.id) -> dict:
        reply = lower.node.rpc_responder.handle(seal_message(body, lower.config.node.id, to))
        answer, problem = _open(b"exnode-rpc-answer/1\n", open_message(reply, reader, upper.node.encryption),
                                "answer", upper.node.peers)
        assert problem is None
        return answer

    unsigned = status(json.dumps({"request": document}).encode())
    assert unsigned["status"] == "UNAUTHENTICATED" and "unsigned" in unsigned["message"]
    stranger = status(_sign(REQUEST_CONTEXT, {**document, "from": "nobody-known"}, upper.node.keys.active,
                            "request"), "nobody-known")
    assert stranger["status"] == "UNAUTHENTICATED" and "'nobody-known' is not a trusted peer" in stranger["message"]
    rewritten = json.loads(_sign(REQUEST_CONTEXT, document, upper.node.keys.active, "request"))
    rewritten["request"]["consumer"] = "11100000MB01284764"
    forged = status(json.dumps(rewritten).encode())
    assert forged["status"] == "PERMISSION_DENIED" and "does not verify" in forged["message"]
    assert lower.node.query.usage(grant)[0] == 0
    refused = lower.node.audit.query(AuditFilter(action="rpc/VerifyClaim")).entries
    assert sorted(e.record.result for e in refused) == ["PERMISSION_DENIED", "UNAUTHENTICATED", "UNAUTHENTICATED"]
    assert status(_sign(REQUEST_CONTEXT, document, upper.node.keys.active, "request"))["status"] == "OK"
    assert lower.node.query.usage(grant)[0] == 1
    assert lower.node.audit.verify().ok
