"""QueryRecords and VerifyClaim through gRPC on both databases: the current record per key masked as
relay and pull mask it, NOT_FOUND per key, MATCH / MISMATCH / NO_RECORD per asserted item in a verdict
that verifies offline, and every refusal with its status, naming the grant, item or field."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2_grpc, lists_pb2, lists_pb2_grpc, query_pb2_grpc
from exnode.v1 import query_pb2 as pb

from catalog.records import Record
from node.bootstrap import load_sample
from node.pipeline import provider_batch
from node.storage.audit_repository import AuditFilter
from security import verdicts
from security.keys import public_keys_document, read_public_keys
from tests.conftest import FixedClock
from tests.fault.support import CONSUMER, LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import register

WANG, LI, NOBODY = "360426199101010071", "11010519491231002X", "110101199003070011"


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningNode]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    config = make_config(tmp_path / "node", url)
    running = RunningNode(replace(config, exchange=replace(config.exchange, dispatch=False)),
                          clock=FixedClock(dt.datetime.now(dt.UTC)))
    load_sample(running.node)
    key = Key()
    register(running, key)
    provider = exchange_pb2_grpc.ExchangeServiceStub(running.channel_as(PROVIDER, ["provider"]))
    records = []
    for n, (id_number, name, amount) in enumerate([(WANG, "王芳", 1234.5), (LI, "李娜", 800)], start=1):
        record = low_income_record(n)
        records.append(Record(record.id, record.sequence, record.operation,
                              {**record.payload, "公民身份号码": id_number, "姓名": name, "月保障金额": amount}))
    provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key)))
    yield running
    running.close()


def demand(node: RunningNode, kind: str = "COPY", items: tuple[str, ...] = (), quota: int = 0) -> str:
    consumer = lists_pb2_grpc.ListsServiceStub(node.channel_as(CONSUMER, ["consumer"]))
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
    filed = consumer.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保资格核验", legal_basis="社会救助暂行办法", contact="王芳",
        items=list(items), kind=kind, daily_quota=quota)))
    assert filed.state == lists_pb2.UNDER_REVIEW  # 有条件共享: the provider's reviewer decides
    return reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=filed.id, approve=True)).grant_id


def query(node: RunningNode) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(node.channel_as(CONSUMER, ["consumer"]))


def keys(*numbers: str) -> list[pb.RecordKey]:
    return [pb.RecordKey(values={"公民身份号码": number}) for number in numbers]


def refused(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_query_answers_the_current_record_per_key_masked_and_not_found_per_key(node):
    stub = query(node)
    denied = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG)))
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED and "holds no grant" in denied.details()
    grant = demand(node, items=("姓名", "公民身份号码", "月保障金额"))
    answer = stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME,
                                                      keys=keys(WANG, NOBODY, LI.lower())))
    assert answer.grant_id == grant
    assert [r.status for r in answer.results] == [pb.KeyResult.FOUND, pb.KeyResult.NOT_FOUND, pb.KeyResult.FOUND]
    first = json.loads(answer.results[0].payload)
    assert first == {"姓名": "王芳", "公民身份号码": "360426********0071", "月保障金额": 1234.5}  # default masking
    assert answer.results[2].record_id == "DB-000002"
    entries = node.node.audit.query(AuditFilter(action="QueryService/QueryRecords", result="OK")).entries
    (entry,) = entries
    assert f"grant {grant}; 3 keys, 2 found" in entry.record.detail
    assert answer.results[1].key_hash[:16] in entry.record.detail
    assert WANG not in entry.record.detail and NOBODY not in entry.record.detail
    assert entry.record.target == f"resource:{LOW_INCOME}"
    assert _monthly_counts(node) == (1, 0)  # the refused call is no exchange: the monthly report counts one


def _monthly_counts(node: RunningNode) -> tuple[int, int]:
    """(queries, verifications) of the low-income resource in this month's 统计月报."""
    month = node.node.lists.clock().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    [line] = [r for r in node.node.report.compute(month).resources if r.resource_code == LOW_INCOME]
    return line.queries, line.verifications


def test_query_refuses_bad_keys_naming_the_field_and_too_many_keys(node):
    demand(node)
    stub = query(node)
    bad = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG, WANG[:-1] + "2")))
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT and "keys[1].公民身份号码" in bad.details()
    assert "GB 11643" in bad.details()
    many = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(*[WANG] * 101)))
    assert many.code() is grpc.StatusCode.INVALID_ARGUMENT and "at most 100" in many.details()
    other = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code=LOW_INCOME,
                                                              keys=[pb.RecordKey(values={"姓名": "王芳"})]))
    assert other.code() is grpc.StatusCode.INVALID_ARGUMENT and "keys[0].姓名" in other.details()
    missing = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code="311140001/999999", keys=keys(WANG)))
    assert missing.code() is grpc.StatusCode.NOT_FOUND


def claim(stub, **asserted: str) -> pb.Verdict:
    return stub.VerifyClaim(pb.VerifyClaimRequest(
        resource_code=LOW_INCOME, key=pb.RecordKey(values={"公民身份号码": asserted.pop("key", WANG)}),
        claims=[pb.AssertedItem(item=item, value=value) for item, value in asserted.items()]))


def test_verify_answers_per_item_in_a_verdict_that_verifies_offline(node, tmp_path):
    stub = query(node)
    copy_grant = demand(node)
    denied = refused(claim, stub, 姓名="王芳")
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "no verification grant" in denied.details() and copy_grant in denied.details()
    grant = demand(node, "VERIFY", ("姓名", "月保障金额", "纳入保障日期"))
    verdict = claim(stub, 姓名="王　芳", 月保障金额="≤ 1200", 纳入保障日期="2025年6月1日")
    assert [(a.item, a.result) for a in verdict.answers] == [
        ("姓名", pb.MATCH), ("月保障金额", pb.MISMATCH), ("纳入保障日期", pb.MATCH)]
    assert verdict.grant_id == grant
    nobody = claim(stub, key=NOBODY, 姓名="王芳")
    assert [a.result for a in nobody.answers] == [pb.NO_RECORD]
    assert b"1234.5" not in verdict.document and WANG.encode() not in verdict.document  # never the stored value

    keys_file = tmp_path / "public-keys.json"
    keys_file.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)), encoding="utf-8")
    trusted = read_public_keys(keys_file)
    signed = verdicts.SignedVerdict(json.loads(verdict.document), verdict.signature)
    file = signed.file(json.loads(verdict.request))
    assert verdicts.verify_file(file, trusted, node.config.node.id) == []
    assert verdicts.request_hash(file["request"]) == verdict.request_hash
    forged = json.loads(json.dumps(file))
    forged["verdict"]["answers"][1]["result"] = "MATCH"
    assert "does not verify" in verdicts.verify_file(forged, trusted)[0]
    swapped = json.loads(json.dumps(file))
    swapped["request"]["key"]["公民身份号码"] = LI
    assert "request_hash" in verdicts.verify_file(swapped, trusted)[0]

    details = [e.record.detail for e in node.node.audit.query(
        AuditFilter(action="QueryService/VerifyClaim", result="OK")).entries]
    assert len(details) == 2 and any(f"grant {grant}" in d and "姓名=MATCH, 月保障金额=MISMATCH" in d for d in details)
    assert not any(WANG in d or NOBODY in d for d in details)
    assert _monthly_counts(node) == (0, 2)


def test_verify_refuses_items_outside_the_grant_bad_input_and_a_grant_that_is_no_longer_live(node):
    stub = query(node)
    grant = demand(node, "VERIFY", ("姓名",))
    outside = refused(claim, stub, 月保障金额="≤ 1200")
    assert outside.code() is grpc.StatusCode.PERMISSION_DENIED
    assert grant in outside.details() and "月保障金额" in outside.details()
    bad = refused(claim, stub, key="36042619910101007X", 姓名="王芳")
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT and "key.公民身份号码" in bad.details()
    nothing = refused(claim, stub)
    assert nothing.code() is grpc.StatusCode.INVALID_ARGUMENT and "claims" in nothing.details()
    copy = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG)))
    assert copy.code() is grpc.StatusCode.PERMISSION_DENIED  # a verification grant hands out no records
    assert [a.result for a in claim(stub, 姓名="王芳").answers] == [pb.MATCH]
    reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
    reviewer.RevokeGrant(lists_pb2.RevokeGrantRequest(id=grant, reason="用途已完成"))
    revoked = refused(claim, stub, 姓名="王芳")
    assert revoked.code() is grpc.StatusCode.PERMISSION_DENIED
    assert grant in revoked.details() and "revoked" in revoked.details()


def test_the_daily_quota_refuses_with_when_it_resets_and_counts_mismatches(node):
    stub = query(node)
    grant = demand(node, "VERIFY", ("姓名",), quota=2)
    claim(stub, 姓名="王芳")
    claim(stub, 姓名="张三")
    over = refused(claim, stub, 姓名="王芳")
    assert over.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grant in over.details() and "resets at" in over.details() and "Beijing" in over.details()
    assert node.node.query.usage(grant) == (2, 1)
    node.node.catalog.clock.advance(days=1)  # the next Beijing day
    assert [a.result for a in claim(stub, 姓名="王芳").answers] == [pb.MATCH]


def test_the_cli_queries_verifies_and_checks_the_verdict_offline(node, tmp_path, capsys):
    from node.cli import main

    demand(node, items=("姓名", "公民身份号码"))
    demand(node, "VERIFY", ("姓名", "月保障金额"))
    token = node.token(CONSUMER, ["consumer"])
    client = ["--server", node.address, "--token", token]
    assert main(["records", "query", *client, "--resource", LOW_INCOME, "--key", f"公民身份号码={WANG}",
                 "--key", f"公民身份号码={NOBODY}", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in shown["results"]] == ["FOUND", "NOT_FOUND"]
    assert shown["results"][0]["record"] == {"姓名": "王芳", "公民身份号码": "360426********0071"}
    out = tmp_path / "verdict.json"
    assert main(["verify", "claim", *client, "--resource", LOW_INCOME, "--key", f"公民身份号码={WANG.lower()}",
                 "--assert", "姓名=王芳", "--assert", "月保障金额=<=1200", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["姓名: MATCH", "月保障金额: MISMATCH"]
    keys = tmp_path / "public-keys.json"
    keys.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)), encoding="utf-8")
    assert main(["verdict", "verify", str(out), "--keys", str(keys)]) == 0
    assert "OK, signed by node" in capsys.readouterr().out
    tampered = json.loads(out.read_text(encoding="utf-8"))
    tampered["verdict"]["answers"][1]["result"] = "MATCH"
    out.write_text(json.dumps(tampered, ensure_ascii=False), encoding="utf-8")
    assert main(["verdict", "verify", str(out), "--keys", str(keys)]) == 1
    assert "does not verify" in capsys.readouterr().err
    assert main(["verify", "claim", *client, "--resource", LOW_INCOME, "--key", "公民身份号码=123",
                 "--assert", "姓名=王芳"]) == 1
    assert "INVALID_ARGUMENT: key.公民身份号码" in capsys.readouterr().err


def test_records_send_registers_the_key_and_stores_a_signed_batch(node, tmp_path, capsys):
    from node.cli import main

    lines = tmp_path / "records.jsonl"
    record = low_income_record(3)
    lines.write_text(json.dumps({"id": "DB-000003", "sequence": 3, "operation": "UPSERT",
                                 "payload": {**record.payload, "公民身份号码": NOBODY}}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    token = node.token(PROVIDER, ["catalog_admin", "provider"])
    client = ["--server", node.address, "--token", token]
    key_dir = str(tmp_path / "provider-key")
    assert main(["records", "keygen", "--key-dir", key_dir]) == 0
    assert main(["records", "register", "--key-dir", key_dir, "--dept", PROVIDER, *client]) == 0
    capsys.readouterr()
    args = ["records", "send", str(lines), "--resource", LOW_INCOME, "--provider", PROVIDER, "--key-dir", key_dir,
            *client]
    assert main(args) == 0
    assert main([*args, "--restart"]) == 0  # the whole file again: the node knows the record
    demand(node)
    answer = query(node).QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(NOBODY)))
    assert answer.results[0].record_id == "DB-000003"


def test_concurrent_verifications_never_exceed_the_quota(node):
    from concurrent.futures import ThreadPoolExecutor

    ledger = node.node.query.quota
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ledger.take("SQ-RACE", "2026-12-01", 50, 1), range(120)))
    assert sorted(r for r in results if r is not None) == list(range(1, 51))
    assert results.count(None) == 70
    with node.node.uow() as uow:
        assert uow.verifications.usage("SQ-RACE", "2026-12-01") == (50, 50)
    assert ledger.commits < ledger.takes  # concurrent takes shared commits
    with ThreadPoolExecutor(8) as pool:  # room for all: a batch's takes of one grant are one statement
        roomy = list(pool.map(lambda n: ledger.take("SQ-ROOMY", "2026-12-01", 1000, n % 2), range(120)))
    assert sorted(roomy) == list(range(1, 121))  # each its own count, none twice
    with node.node.uow() as uow:
        assert uow.verifications.usage("SQ-ROOMY", "2026-12-01") == (120, 60)


def test_answers_to_a_consumer_with_an_encryption_key_are_sealed_and_the_cli_opens_them(node, tmp_path, capsys):
    from node.cli import main
    from security.sealing import ConsumerPrivateKey
    from tests.integration.test_secrecy_to_consumer import register_encryption_key

    demand(node, items=("姓名", "公民身份号码"))
    demand(node, "VERIFY", ("姓名",))
    private = ConsumerPrivateKey.generate()
    kid = register_encryption_key(node, private)
    stub = query(node)
    answer = stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG, NOBODY)))
    assert answer.sealing["x-exnode-enc-kid"] == kid and answer.request_id
    found = answer.results[0]
    assert found.status == pb.KeyResult.FOUND and "王芳".encode() not in found.payload and b"0071" not in found.payload
    verdict = claim(stub, 姓名="王芳")
    assert verdict.sealed and not verdict.answers and not verdict.document and not verdict.request
    assert WANG.encode() not in verdict.sealed
    entries = node.node.audit.query(AuditFilter(result="OK")).entries
    assert sum(f"sealed to key {kid}" in e.record.detail for e in entries) == 2

    key_file = tmp_path / "consumer.pem"
    key_file.write_bytes(private.private_pem)
    client = ["--server", node.address, "--token", node.token(CONSUMER, ["consumer"])]
    query_args = ["records", "query", *client, "--resource", LOW_INCOME, "--key", f"公民身份号码={WANG}"]
    assert main([*query_args, "--json"]) == 2
    assert f"sealed to your department's encryption key {kid}: give --decrypt-key" in capsys.readouterr().err
    assert main([*query_args, "--json", "--decrypt-key", str(key_file)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sealed"] and shown["results"][0]["record"] == {"姓名": "王芳", "公民身份号码": "360426********0071"}
    other = tmp_path / "other.pem"
    other.write_bytes(ConsumerPrivateKey.generate().private_pem)
    assert main([*query_args, "--decrypt-key", str(other)]) == 2
    assert f"sealed to key '{kid}'" in capsys.readouterr().err

    node_keys = tmp_path / "public-keys.json"
    node_keys.write_text(json.dumps(public_keys_document(node.node.keys, node.config.node.id)), encoding="utf-8")
    out = tmp_path / "verdict.json"
    assert main(["verify", "claim", *client, "--resource", LOW_INCOME, "--key", f"公民身份号码={WANG}",
                 "--assert", "姓名=王芳", "--decrypt-key", str(key_file), "--keys", str(node_keys),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("姓名: MATCH") and f"sealed to key {kid}, opened; signature checked" in printed
    assert main(["verdict", "verify", str(out), "--keys", str(node_keys)]) == 0  # the opened file verifies offline


def test_a_verification_leaves_one_true_audit_entry_when_its_response_fails_before_or_after_the_commit(
        node, monkeypatch):
    """The OK entry commits with the quota count. A response that cannot be built is built before that
    commit: nothing is counted and the one entry is the failure's. A failure after the commit (the answer
    counted and audited, then not delivered) adds no second entry."""
    from node.grpc import query_servicer

    stub = query(node)
    grant = demand(node, "VERIFY", ("姓名",))
    audit = node.node.audit

    def entries() -> list:
        return sorted(audit.query(AuditFilter(action="QueryService/VerifyClaim")).entries, key=lambda e: e.sequence)

    def broken(answer):
        raise RuntimeError("the response cannot be built")

    monkeypatch.setattr(query_servicer, "verdict_to_proto", broken)
    assert refused(claim, stub, 姓名="王芳").code() is grpc.StatusCode.UNKNOWN
    (failed,) = entries()
    assert failed.record.result == "UNKNOWN" and "cannot be built" in failed.record.detail
    assert node.node.query.usage(grant) == (0, 0)  # not counted: the caller got no verdict
    monkeypatch.undo()

    from node.services.query import VerifyAnswer

    detail = VerifyAnswer.audit_detail
    calls: list[int] = []

    def lost_after_commit(answer: VerifyAnswer) -> str:
        calls.append(1)  # the first call writes the entry in the count's transaction; the next is after it
        if len(calls) > 1:
            raise RuntimeError("lost after the commit")
        return detail(answer)

    monkeypatch.setattr(VerifyAnswer, "audit_detail", lost_after_commit)
    refused(claim, stub, 姓名="王芳")
    after = entries()
    assert len(after) == 2 and after[-1].record.result == "OK"  # one entry for the call, the committed one
    assert node.node.query.usage(grant) == (1, 0)
    monkeypatch.undo()
    assert [a.result for a in claim(stub, 姓名="王芳").answers] == [pb.MATCH]
    assert [e.record.result for e in entries()] == ["UNKNOWN", "OK", "OK"]
    assert len({e.record.request_id for e in entries()}) == 3


def test_a_grant_revoked_or_a_key_registered_through_one_replica_is_seen_by_the_next_request_on_another(node):
    """Two nodes on one database (replicas): the grant and consumer-key caches of the one answering are
    refreshed by the counters the other bumps, so nothing it answers is staler than the database."""
    from security.sealing import ConsumerPrivateKey
    from tests.integration.test_secrecy_to_consumer import register_encryption_key

    replica = RunningNode(node.config, clock=node.node.catalog.clock)
    try:
        verify_grant = demand(node, "VERIFY", ("姓名",))
        copy_grant = demand(node, items=("姓名",))
        stub = query(replica)
        for _ in range(2):  # the second answer comes from the replica's caches
            assert [a.result for a in claim(stub, 姓名="王芳").answers] == [pb.MATCH]
            assert not stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG))).sealing
        kid = register_encryption_key(node, ConsumerPrivateKey.generate())
        sealed = stub.QueryRecords(pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG)))
        assert sealed.sealing["x-exnode-enc-kid"] == kid and "王芳".encode() not in sealed.results[0].payload
        reviewer = lists_pb2_grpc.ListsServiceStub(node.channel_as(PROVIDER, ["reviewer"]))
        for grant in (verify_grant, copy_grant):
            reviewer.RevokeGrant(lists_pb2.RevokeGrantRequest(id=grant, reason="用途已完成"))
        revoked = refused(claim, stub, 姓名="王芳")
        assert revoked.code() is grpc.StatusCode.PERMISSION_DENIED
        assert verify_grant in revoked.details() and "revoked" in revoked.details()
        gone = refused(stub.QueryRecords, pb.QueryRecordsRequest(resource_code=LOW_INCOME, keys=keys(WANG)))
        assert gone.code() is grpc.StatusCode.PERMISSION_DENIED and copy_grant in gone.details()
        assert replica.node.lists.grant_cache.hits > 0  # the cache was in use, so the refusals above are its
    finally:
        replica.close()
