"""A caller that goes away while VerifyClaim runs, locally and routed, over the real broker and both
databases: the node stays healthy, the cancelled call's one audit entry is committed and says how the caller
left, the chain verifies, and the quota is charged by one rule (QueryServicer.VerifyClaim's docstring): a
verification the node produced is counted exactly once, one whose caller left before it began never. A
routed request whose caller left is not answered late: the answering node sees it past its deadline, never
processes it, and the late reply is dropped without an error."""

from __future__ import annotations

import logging
import threading
import time

import grpc
import pytest
from exnode.v1 import query_pb2 as pb
from exnode.v1 import query_pb2_grpc

from node.services import quota
from node.storage.audit_repository import AuditFilter
from tests.fault.support import CONSUMER, LOW_INCOME, wait_until
from tests.integration.test_remote_verify import WANG, claim, verification_grant
from tests.integration.test_remote_verify import pair as pair  # the fixture: two nodes, SQLite and PostgreSQL

pytestmark = [pytest.mark.rabbitmq]
REQUEST = pb.VerifyClaimRequest(resource_code=LOW_INCOME, key=pb.RecordKey(values={"公民身份号码": WANG}),
                                claims=[pb.AssertedItem(item="姓名", value="王芳")])


def _slowed(monkeypatch: pytest.MonkeyPatch, seconds: float) -> threading.Event:
    """Every verification's count (in the audit writer's thread, inside the transaction that commits the
    call's entry with it) takes ``seconds``: the caller leaves while the node is producing its answer, on
    either path (on SQLite the verification runs on the event loop up to that count, on PostgreSQL in a
    worker thread); the event is set when one has begun."""
    began = threading.Event()
    apply_together = quota._apply_together

    def slow(*args, **kwargs):
        began.set()
        time.sleep(seconds)
        return apply_together(*args, **kwargs)

    monkeypatch.setattr(quota, "_apply_together", slow)
    return began


def _entries(node, action: str) -> list:
    return [e.record for e in node.node.audit.query(AuditFilter(action=action)).entries]


def test_a_local_caller_that_leaves_mid_verification_is_counted_once_and_its_entry_says_how(pair, monkeypatch):
    lower, _ = pair
    grant = verification_grant(lower, ("姓名",))
    stub = query_pb2_grpc.QueryServiceStub(lower.channel_as(CONSUMER, ["consumer"]))
    began = _slowed(monkeypatch, 1.5)

    call = stub.VerifyClaim.future(REQUEST, timeout=60)
    assert began.wait(30)
    call.cancel()
    with pytest.raises(grpc.FutureCancelledError):
        call.result()
    began.clear()
    with pytest.raises(grpc.RpcError) as expired:  # the deadline passes while the count runs
        stub.VerifyClaim(REQUEST, timeout=0.5)
    assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: len(_entries(lower, "QueryService/VerifyClaim")) == 2, 30, "both callers' entries")
    entries = _entries(lower, "QueryService/VerifyClaim")
    assert sorted(r.result for r in entries) == ["CANCELLED", "DEADLINE_EXCEEDED"], entries
    assert all("not delivered: the caller left" in r.detail and grant in r.detail for r in entries)
    assert lower.node.query.usage(grant)[0] == 2  # each produced and counted once, with its entry

    monkeypatch.undo()
    assert [a.result for a in claim(lower, 姓名="王芳").answers] == [pb.MATCH]  # healthy afterwards
    assert lower.node.query.usage(grant)[0] == 3
    assert sorted(r.result for r in _entries(lower, "QueryService/VerifyClaim")) == [
        "CANCELLED", "DEADLINE_EXCEEDED", "OK"]  # one entry per call, no second one for the cancelled
    assert lower.node.audit.verify().ok


def test_a_routed_caller_whose_deadline_passes_is_not_answered_late(pair, caplog):
    """The lower node is slow to take the request: by then its deadline (the caller's) has passed, so it
    answers DEADLINE_EXCEEDED without verifying or counting; its reply reaches the upper node after the
    caller gave up and is dropped quietly. A caller that cancels within the deadline is answered by the
    lower node (it cannot know) and counted there once; the upper node stops waiting at once (its RPC
    thread is freed) and its entry records CANCELLED."""
    lower, upper = pair
    grant = verification_grant(lower, ("姓名",))
    stub = query_pb2_grpc.QueryServiceStub(upper.channel_as(CONSUMER, ["consumer"]))
    assert [a.result for a in claim(upper, 姓名="王芳").answers] == [pb.MATCH]  # the route is warm
    responder = lower.node.rpc_responder
    handle = responder.handle
    taken = threading.Event()

    def slow(body: bytes) -> bytes:
        taken.set()
        time.sleep(4.0)
        return handle(body)

    responder.handle = slow
    caplog.set_level(logging.WARNING)
    try:
        with pytest.raises(grpc.RpcError) as expired:
            stub.VerifyClaim(REQUEST, timeout=2.0)
        assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        wait_until(lambda: "DEADLINE_EXCEEDED" in {r.result for r in _entries(lower, "rpc/VerifyClaim")}, 30,
                   "the lower node's refusal of the late request")
        wait_until(lambda: "DEADLINE_EXCEEDED" in {r.result for r in _entries(upper, "QueryService/VerifyClaim")},
                   30, "the upper node's entry of the call")
        assert lower.node.query.usage(grant)[0] == 1  # the late request was not verified

        taken.clear()
        call = stub.VerifyClaim.future(REQUEST, timeout=60)
        assert taken.wait(30)
        call.cancel()
        wait_until(lambda: "CANCELLED" in {r.result for r in _entries(upper, "QueryService/VerifyClaim")}, 30,
                   "the upper node's entry of the cancelled call")
        # the upper node stopped waiting at once (its thread is free), not when the answer came
        assert lower.node.query.usage(grant)[0] == 1
        wait_until(lambda: lower.node.query.usage(grant)[0] == 2, 30, "the lower node's answer, counted once")
    finally:
        responder.handle = handle
    time.sleep(1.0)  # the late replies have reached the upper node's reply queue by now
    assert [a.result for a in claim(upper, 姓名="王芳").answers] == [pb.MATCH]  # both nodes healthy
    assert lower.node.query.usage(grant)[0] == 3
    assert sorted(r.result for r in _entries(lower, "rpc/VerifyClaim")) == ["DEADLINE_EXCEEDED", "OK", "OK", "OK"]
    assert sorted(r.result for r in _entries(upper, "QueryService/VerifyClaim")) == [
        "CANCELLED", "DEADLINE_EXCEEDED", "OK", "OK"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert lower.node.audit.verify().ok and upper.node.audit.verify().ok


def test_a_routed_query_whose_caller_cancels_stops_waiting_at_once(pair, caplog):
    """QueryRecords routed to the lower node: the caller cancels while the lower node is slow to answer;
    the upper node's wait ends at once (nothing waits for the reply any more, so its RPC thread is free)
    rather than at the answer or the deadline, and the late reply is dropped without an error."""
    from tests.integration.test_query_verify import demand

    lower, upper = pair
    demand(lower, items=("姓名", "公民身份号码"))
    stub = query_pb2_grpc.QueryServiceStub(upper.channel_as(CONSUMER, ["consumer"]))
    ask = pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=[pb.RecordKey(values={"公民身份号码": WANG})])
    assert stub.QueryRecords(ask, timeout=60).results[0].status == pb.KeyResult.FOUND  # the route is warm
    responder, client = lower.node.rpc_responder, upper.node.rpc_client
    handle = responder.handle
    taken, release = threading.Event(), threading.Event()

    def slow(body: bytes) -> bytes:
        taken.set()
        release.wait(30)
        return handle(body)

    responder.handle = slow
    caplog.set_level(logging.WARNING)
    try:
        call = stub.QueryRecords.future(ask, timeout=60)
        assert taken.wait(30)
        assert client._waiting  # the upper node waits for the lower node's answer
        call.cancel()
        wait_until(lambda: not client._waiting, 10, "the upper node to stop waiting after the cancel")
        assert not release.is_set()  # while the lower node still holds the request
    finally:
        release.set()
        responder.handle = handle
    wait_until(lambda: len(_entries(lower, "rpc/QueryRecords")) == 2, 30, "the lower node's late answer")
    time.sleep(1.0)  # its reply has reached the upper node's reply queue by now, and is dropped
    assert stub.QueryRecords(ask, timeout=60).results[0].status == pb.KeyResult.FOUND  # both nodes healthy
    assert "CANCELLED" in {r.result for r in _entries(upper, "QueryService/QueryRecords")}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert lower.node.audit.verify().ok and upper.node.audit.verify().ok
