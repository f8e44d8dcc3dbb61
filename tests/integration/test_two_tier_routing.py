"""A request across two tiers over the real RabbitMQ: the top node asks about a resource the bottom node
holds through the middle node its entry came from; the middle relays (signed, one more hop), the bottom
answers under its own grants, and the top checks the whole chain of hops (each relayed answer signed by its
node and unchanged) before answering its caller. A middle node that alters the answer is caught."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
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
from node.pipeline import provider_batch
from node.services.remote import (
    ANSWER_CONTEXT,
    REQUEST_CONTEXT,
    ROUTE_ANSWER_CONTEXT,
    ROUTE_CONTEXT,
    _sign,
    body_hash,
    hop_record,
    open_route_answer,
)
from node.storage.audit_repository import AuditFilter
from security.broker_sealing import open_message, parse_entry, public_entry, seal_message
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

_BLOBS = re.compile(rb"[0-9A-Za-z+/_-]{16,}={0,2}|\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d|Z)?")
"""Ids, hashes, keys, signatures (hex or base64) and times in a route: where short digit strings occur by chance."""


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
    # the bottom knows its upper neighbour and the top that asks it: the requester's own signature on who
    # asks, and every hop's record, are checked with keys it knows
    _trust(bottom_config, (middle_config, ids[1]), (top_config, ids[2]))
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
            running.start_rpc(timeout_s=60)
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
    """What a relaying node could send back instead of what it was given: each is refused naming the hop."""
    bottom, middle, top = tiers
    b, m, t = (n.config.node.id for n in tiers)
    request_id = uuid.uuid4().hex
    top_sealing = top.node.rpc_responder.handle.__self__.sealing
    inner = {"format": "exnode-rpc-answer/1", "id": request_id, "from": b, "to": t, "status": "PERMISSION_DENIED",
             "message": "no grant", "at": dt.datetime.now(dt.UTC).isoformat(), "hops": [t, m, b]}
    sealed = seal_message(_sign(ANSWER_CONTEXT, inner, bottom.node.keys.active, "answer"), t,
                          parse_entry(public_entry(top.node.encryption))).decode()

    def route_answer(signer, document: dict) -> bytes:
        return _sign(ROUTE_ANSWER_CONTEXT, document, signer, "route_answer")

    def from_bottom(**changes: object) -> dict:
        return json.loads(route_answer(bottom.node.keys.active, {"format": "exnode-route-answer/1", "id": request_id,
                                                                 "from": b, "to": m, "hops": [t, m, b],
                                                                 "sealed_answer": sealed, **changes}))

    def outer(relayed: dict | None = None, **changes: object) -> bytes:
        return route_answer(middle.node.keys.active, {"format": "exnode-route-answer/1", "id": request_id, "from": m,
                                                      "to": t, "hops": [t, m, b],
                                                      "relayed": relayed or from_bottom(), **changes})

    def opened(reply: bytes) -> tuple[dict, str | None]:
        return open_route_answer(reply, t, m, b, request_id, top.node.peers, top_sealing)

    answer, problem = opened(outer())
    assert problem is None and answer["status"] == "PERMISSION_DENIED" and answer["from"] == b
    _, skipped = opened(outer(hops=[t, b]))
    assert skipped is not None and "chain of hops" in skipped
    tampered = from_bottom()
    body = json.loads(tampered["route_answer"]["sealed_answer"])
    body["sealed"]["ciphertext"] = base64.b64encode(b"\x00" * 64).decode()
    tampered["route_answer"]["sealed_answer"] = json.dumps(body)  # under the bottom's signature: it breaks
    _, changed = opened(outer(tampered))
    assert changed is not None and f"hop 2 ({b})" in changed and "does not verify" in changed
    _, alone = opened(route_answer(middle.node.keys.active, {  # the middle answering OK in the bottom's place
        "format": "exnode-route-answer/1", "id": request_id, "from": m, "to": t, "hops": [t, m], "status": "OK"}))
    assert alone is not None
    _, forged = opened(route_answer(middle.node.keys.active, {  # the bottom's sealed answer, under the middle's name
        "format": "exnode-route-answer/1", "id": request_id, "from": m, "to": t, "hops": [t, m, b],
        "sealed_answer": sealed}))
    assert forged is not None and "in the place of" in forged


def test_the_middle_node_routes_what_it_cannot_read_and_its_tampering_is_detected(tiers):
    """End to end: the request is sealed to the bottom node, its answer to the top; the middle sees the
    route (origin, resource, deadline, request id) and signs its hop. Everything the middle node opens holds
    no ID number, name, asserted value or amount; a sealed body it changes is caught."""
    from tests.integration.test_query_verify import demand

    bottom, middle, top = tiers
    b, m, t = (n.config.node.id for n in tiers)
    relay = middle.node.rpc_responder.handle.__self__
    seen: list[bytes] = []
    open_sealed = relay.sealing.open

    def watching(body: bytes) -> bytes:  # every request and answer the middle node can read
        opened = open_sealed(body)
        seen.append(opened)
        return opened

    relay.sealing.open = watching
    verification_grant(bottom, ("姓名", "月保障金额"))
    demand(bottom, items=("姓名", "月保障金额"))
    stub = query_pb2_grpc.QueryServiceStub(top.channel_as(CONSUMER, ["consumer"]))

    def verify() -> pb.Verdict:
        return stub.VerifyClaim(pb.VerifyClaimRequest(resource_code=LOW_INCOME, key=pb.RecordKey(
            values={"公民身份号码": WANG}), claims=[pb.AssertedItem(item="姓名", value="王芳"),
                                                pb.AssertedItem(item="月保障金额", value="≤ 1300")]), timeout=90)

    assert [a.result for a in verify().answers] == [pb.MATCH, pb.MATCH]
    answer = stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[
        pb.RecordKey(values={"公民身份号码": WANG})]), timeout=90)
    assert json.loads(answer.results[0].payload) == {"姓名": "王芳", "月保障金额": 1234.5}
    assert answer.answered_by == f"{b} via {m}"
    kinds = [next(iter(json.loads(body))) for body in seen]  # routes from the top, route answers from the bottom
    assert kinds.count("route") >= 2 and kinds.count("route_answer") >= 2, kinds
    secrets = (WANG.encode(), "王芳".encode(), "王芳".encode("unicode_escape"), b"1234.5")
    # Four-digit secrets are also hex: they are looked for outside the route's ids, hashes, keys, signatures
    # and times (where "0071" turns up by chance now and then), so a masked number still shows.
    short = (WANG[-4:].encode(), b"1300")
    for body in seen:
        plain = _BLOBS.sub(b"", body)
        assert not any(s in body for s in secrets) and not any(s in plain for s in short), (
            f"the middle node reads {body[:300]!r}")
        assert "sealed_request" in json.loads(body) or "sealed_answer" in json.loads(body)["route_answer"]

    forward = relay.forward

    def changing_the_request(hop: str, body: bytes, timeout: float) -> bytes:
        """A middle node that flips the sealed request's ciphertext and signs its hop over the change."""
        message = json.loads(body)
        sealed = json.loads(message["sealed_request"])
        raw = bytearray(base64.b64decode(sealed["sealed"]["ciphertext"]))
        raw[20] ^= 1
        sealed["sealed"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        message["sealed_request"] = json.dumps(sealed)
        route = {**message["route"], "body_sha256": body_hash(message["sealed_request"])}
        signed = json.loads(_sign(ROUTE_CONTEXT, route, middle.node.keys.active, "route"))
        return forward(hop, json.dumps({**signed, "sealed_request": message["sealed_request"]}).encode(), timeout)

    relay.forward = changing_the_request
    with pytest.raises(grpc.RpcError) as caught:  # the top's own hop record names the body it sealed
        verify()
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    assert f"node {b}" in caught.value.details() and f"hop 0 ({t})" in caught.value.details()
    assert "sealed body differ" in caught.value.details()
    relay.forward = forward

    responder = middle.node.rpc_responder
    handle = responder.handle
    top_key = top.node.encryption

    def changing_the_answer(body: bytes) -> bytes:
        """A middle node that flips the sealed answer of the bottom and signs its own hop again."""
        reply = json.loads(open_message(handle(body), t, top_key))
        relayed = reply["route_answer"]["relayed"]
        sealed = json.loads(relayed["route_answer"]["sealed_answer"])
        raw = bytearray(base64.b64decode(sealed["sealed"]["ciphertext"]))
        raw[20] ^= 1
        sealed["sealed"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        relayed["route_answer"]["sealed_answer"] = json.dumps(sealed)
        again = _sign(ROUTE_ANSWER_CONTEXT, reply["route_answer"], middle.node.keys.active, "route_answer")
        return seal_message(again, t, parse_entry(public_entry(top_key)))

    responder.handle = changing_the_answer
    with pytest.raises(grpc.RpcError) as caught:
        verify()
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE and f"hop 2 ({b})" in caught.value.details()
    responder.handle = handle
    assert [a.result for a in verify().answers] == [pb.MATCH, pb.MATCH]


def test_a_request_a_middle_node_forges_in_the_requesters_name_is_refused(tiers):
    """Who asks is the requester's word under its own node key, never a hop's: a middle node that rewrites
    the asking department (sealing a request of its own to the bottom) is refused whether it keeps the
    top's signed hop record or forges one; a requester that signs no identity claims, and one the bottom
    has no key of, are refused UNAUTHENTICATED. Each refusal is audited at the bottom and spends no quota;
    an honest request still gets its verdict afterwards."""
    bottom, middle, top = tiers
    b, m, t = (n.config.node.id for n in tiers)
    grant = verification_grant(bottom, ("姓名",))
    relay = middle.node.rpc_responder.handle.__self__
    forward = relay.forward
    other_department = "11100000MB01284764"

    class Posing:  # the middle's key under the name of the top's
        kid = top.node.keys.active.kid

        def sign(self, data: bytes) -> bytes:
            return middle.node.keys.active.sign(data)

    def forging(sign_request: bool, forge_top_hop: bool):
        def hook(hop: str, body: bytes, timeout: float) -> bytes:
            message = json.loads(body)
            route = message["route"]
            forged = {"format": "exnode-rpc/1", "id": route["id"], "kind": "verify", "from": t, "to": b,
                      "deadline": route["deadline"], "hops": [t], "consumer": other_department,
                      "subject": "someone", "roles": ["consumer"], "resource": LOW_INCOME,
                      "key": {"公民身份号码": WANG}, "claims": [{"item": "姓名", "value": "王芳"}],
                      "caller_request_id": route["id"], "reply_key": relay.sealing.reply_key}
            signed = _sign(REQUEST_CONTEXT, forged, middle.node.keys.active, "request") if sign_request \
                else json.dumps({"request": forged}).encode()
            sealed = seal_message(signed, b, parse_entry(public_entry(bottom.node.encryption))).decode()
            changed = {**route, "body_sha256": body_hash(sealed)}
            if forge_top_hop:  # the top's hop record, made again over the new body: the middle's key, the top's kid
                changed["hop_records"] = [hop_record(changed, t, m, Posing()),
                                          *route["hop_records"][1:]]
            again = json.loads(_sign(ROUTE_CONTEXT, changed, middle.node.keys.active, "route"))
            return forward(hop, json.dumps({**again, "sealed_request": sealed}).encode(), timeout)
        return hook

    stub = query_pb2_grpc.QueryServiceStub(top.channel_as(CONSUMER, ["consumer"]))

    def verify() -> pb.Verdict:
        return stub.VerifyClaim(pb.VerifyClaimRequest(resource_code=LOW_INCOME, key=pb.RecordKey(
            values={"公民身份号码": WANG}), claims=[pb.AssertedItem(item="姓名", value="王芳")]), timeout=90)

    def refused() -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            verify()
        assert f"node {b}" in caught.value.details()
        return caught.value

    relay.forward = forging(sign_request=True, forge_top_hop=False)
    kept = refused()
    assert kept.code() is grpc.StatusCode.PERMISSION_DENIED and f"hop 0 ({t})" in kept.details()
    relay.forward = forging(sign_request=True, forge_top_hop=True)
    forged = refused()
    assert forged.code() is grpc.StatusCode.PERMISSION_DENIED and "does not verify" in forged.details()
    assert f"hop 0 ({t})" in forged.details()
    relay.forward = forward
    honest_signer = top.node.query.remote.signer

    class Unsigning:  # a requester that signs no identity claims (its hop record only: an older node)
        kid = honest_signer.kid

        def sign(self, data: bytes) -> bytes:
            return b"" if data.startswith(REQUEST_CONTEXT) else honest_signer.sign(data)

    top.node.query.remote.signer = Unsigning()
    unsigned = refused()
    assert unsigned.code() is grpc.StatusCode.UNAUTHENTICATED and "unsigned" in unsigned.details()
    top.node.query.remote.signer = honest_signer
    known = bottom.node.peers.pop(t)  # a bottom that has no key of the top
    unknown = refused()
    assert unknown.code() is grpc.StatusCode.UNAUTHENTICATED and f"hop 0 ({t})" in unknown.details()
    assert "not a trusted peer" in unknown.details()
    bottom.node.peers[t] = known

    assert bottom.node.query.usage(grant)[0] == 0  # nothing refused was counted
    entries = [e.record for action in ("rpc/VerifyClaim", "rpc/Route")
               for e in bottom.node.audit.query(AuditFilter(action=action)).entries]
    assert sorted(r.result for r in entries) == ["PERMISSION_DENIED", "PERMISSION_DENIED", "UNAUTHENTICATED",
                                                 "UNAUTHENTICATED"], entries
    assert all(r.peer == f"node:{m}" for r in entries)
    assert other_department not in {r.department_code for r in entries}
    assert [a.result for a in verify().answers] == [pb.MATCH]  # the honest request, answered and counted once
    assert bottom.node.query.usage(grant)[0] == 1
    answered = [e.record for e in bottom.node.audit.query(AuditFilter(action="rpc/VerifyClaim")).entries
                if e.record.result == "OK"]
    assert len(answered) == 1 and answered[0].department_code == CONSUMER
    assert answered[0].subject.startswith(f"{t}/")  # asked by the top, proven; passed on by the middle
    assert bottom.node.audit.verify().ok
