"""The upper node's side of the tier link on both databases: what a lower node relays (one-record envelopes
it signed) and the catalog entries it sends up. Messages are handed to ``TierApplication.accept`` as the
inbound consumer hands them over; the broker and the shovel are exercised by tests/e2e/test_three_tiers.py."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.codecs import envelope as envelopes
from adapters.codecs import relay
from adapters.rabbit.inbound import Later
from catalog.errors import IllegalTransition
from catalog.interchange import metadata_to_dict
from catalog.lists import DemandRequest, DemandState
from catalog.records import Operation, Record
from node import bootstrap
from node.config import Config
from node.pipeline.tiers import WAIT_FOR_ENTRY_DELIVERIES, Message, PeerConfigError, load_peers
from node.storage.catalog_repository import ResourceFilter
from node.storage.lists_repository import DemandFilter
from node.storage.tables import batches, records, relayed_records
from security.identity import Principal
from security.keys import KeyStore, write_public_keys
from tests.conftest import PROVIDER, credit_code, resource
from tests.integration.grpc_node import make_config

LOWER = "tlower"
CONSUMER = "11150100011627354Q"
CODE = "311140001/000101"


@pytest.fixture
def lower(tmp_path: Path) -> KeyStore:
    keys = KeyStore.create(tmp_path / "lower" / "keys")
    write_public_keys(keys, LOWER)
    return keys


@pytest.fixture
def upper(tmp_path: Path, database_url: str, lower: KeyStore) -> Iterator[bootstrap.Node]:
    data = tmp_path / "upper"
    config = make_config(data, database_url)
    config = replace(config, node=replace(config.node, id=f"t{uuid.uuid4().hex[:10]}"))
    (data / "peers").mkdir()
    shutil.copy(lower.directory / "public-keys.json", data / "peers" / "lower.json")
    node = bootstrap.build(config)
    try:
        yield node
    finally:
        node.close()


def catalog_entry(signer: KeyStore, *, event: str = "PUBLISHED", code: str = CODE, origin: str = LOWER,
                  sender: str = LOWER) -> Message:
    entry = {"origin_node": origin, "event": event, "code": code, "version": 1,
             "published_at": "2026-11-01T00:00:00+00:00", "retired_at": "",
             "metadata": metadata_to_dict(resource(code))}
    return Message(relay.CATALOG_CONTENT_TYPE, relay.encode_catalog_entry(entry, sender, signer.active))


def record(n: int, **payload: object) -> Record:
    return Record(f"R-{n:04d}", n, Operation.UPSERT, payload or {
        "公民身份号码": "360426********0071", "姓名": f"张{n}", "纳入保障日期": "2025-06-01"})


def relayed(signer: KeyStore, rows: list[Record], *, node_id: str = LOWER, batch_id: str = "b1",
            hops: tuple[envelopes.Hop, ...] = ()) -> list[Message]:
    parts = envelopes.seal_split(batch_id=batch_id, node_id=node_id, provider_code=PROVIDER, resource_code=CODE,
                                 consumer_code=CONSUMER, records=rows, signer=signer.active,
                                 now=dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    return [Message(relay.CONTENT_TYPE, relay.encode(envelopes.with_hops(part, hops))) for part in parts]


def count(node: bootstrap.Node, table: object) -> int:
    with node.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_lower_tier_catalog_entry_is_listed_read_only_with_its_origin(upper: bootstrap.Node, lower: KeyStore):
    assert upper.tiers.accept([catalog_entry(lower)]) == [None]
    assert upper.tiers.accept([catalog_entry(lower)]) == [None], "a repeat changes nothing"
    page = upper.catalog.list(Principal("u", CONSUMER, frozenset({"consumer"})), ResourceFilter(query="最低生活保障"))
    assert [(r.code, r.origin_node) for r in page.resources] == [(CODE, LOWER)]
    with pytest.raises(IllegalTransition, match=f"read-only entry of node {LOWER}"):
        upper.catalog.retire(Principal.system(upper.config.node.id), CODE)
    assert upper.tiers.accept([catalog_entry(lower, event="RETIRED")]) == [None]
    with upper.exchange.uow() as uow:
        assert uow.catalog.get(CODE).status.value == "RETIRED"


def test_catalog_entries_of_an_untrusted_sender_or_over_a_local_resource_are_dead_lettered(
        upper: bootstrap.Node, lower: KeyStore, tmp_path: Path):
    stranger = KeyStore.create(tmp_path / "stranger")
    [untrusted] = upper.tiers.accept([catalog_entry(stranger, sender="stranger")])
    assert untrusted is not None and "not a trusted key of node 'stranger'" in str(untrusted)
    upper.catalog.create(Principal.system(upper.config.node.id), resource("311140001/000102"))
    [local] = upper.tiers.accept([catalog_entry(lower, code="311140001/000102")])
    assert local is not None and "already a resource of this node" in str(local)


def test_relayed_records_are_stored_once_per_sender_batch_and_a_redelivery_changes_nothing(
        upper: bootstrap.Node, lower: KeyStore):
    upper.tiers.accept([catalog_entry(lower)])
    messages = relayed(lower, [record(n) for n in range(1, 8)])
    assert upper.tiers.accept(messages) == [None] * 7
    assert (count(upper, records), count(upper, relayed_records), count(upper, batches)) == (7, 7, 1)
    # The shovel or a crash redelivers some, out of order, with others of a later batch.
    later = relayed(lower, [record(n) for n in range(8, 10)], batch_id="b2")
    assert upper.tiers.accept([messages[5], *later, messages[0]]) == [None] * 4
    assert (count(upper, records), count(upper, relayed_records), count(upper, batches)) == (9, 9, 2)
    report = upper.tiers.verify_chains()
    assert (report.records, report.verified, report.hops, report.problems) == (9, 9, 9, [])


def test_poison_is_refused_with_its_reason_and_the_rest_of_the_group_is_stored(
        upper: bootstrap.Node, lower: KeyStore, tmp_path: Path):
    upper.tiers.accept([catalog_entry(lower)])
    upper.tiers.accept(relayed(lower, [record(1)]))
    stranger = KeyStore.create(tmp_path / "stranger")
    changed = relayed(lower, [record(1, 姓名="李四", 公民身份号码="x", 纳入保障日期="2025-06-01"), record(2)], batch_id="b2")
    forged = relayed(stranger, [record(3)], batch_id="b3")
    unknown_item = relayed(lower, [record(4, 姓名="王五", 婚姻状况="10")], batch_id="b4")
    results = upper.tiers.accept([*changed, *forged, *unknown_item, Message(relay.CONTENT_TYPE, b"\xff garbage")])
    assert results[0] is not None and "already received with other content" in str(results[0])
    assert results[1] is None
    assert results[2] is not None and str(results[2]).startswith("BadSignature")
    assert results[3] is not None and "婚姻状况 not items of" in str(results[3])
    assert results[4] is not None and str(results[4]).startswith("undecodable relayed envelope")
    assert count(upper, records) == 2


def test_records_that_overtook_their_resources_entry_wait_for_it_then_are_refused(upper: bootstrap.Node,
                                                                                    lower: KeyStore):
    [message] = relayed(lower, [record(1)])
    [problem] = upper.tiers.accept([message])
    assert isinstance(problem, Later) and str(problem).startswith(f"NotFound: resource {CODE}")
    [problem] = upper.tiers.accept([replace(message, deliveries=WAIT_FOR_ENTRY_DELIVERIES)])
    assert problem is not None and not isinstance(problem, Later), "it does not wait for ever"
    upper.tiers.accept([catalog_entry(lower)])
    assert upper.tiers.accept([replace(message, deliveries=3)]) == [None]


def test_every_earlier_hop_is_checked_and_kept(upper: bootstrap.Node, lower: KeyStore, tmp_path: Path):
    """A record the lower node got from a department below it carries that department's signature too."""
    department = KeyStore.create(tmp_path / "department")
    write_public_keys(department, "tdept")
    shutil.copy(department.directory / "public-keys.json", upper.config.path("peers") / "dept.json")
    node = bootstrap.build(upper.config)
    try:
        node.tiers.accept([catalog_entry(lower)])
        rows = [record(n) for n in range(1, 4)]
        below = envelopes.seal_split(batch_id="d1", node_id="tdept", provider_code=PROVIDER, resource_code=CODE,
                                     consumer_code=CONSUMER, records=rows, signer=department.active,
                                     now=dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
        good = relayed(lower, rows[:1], hops=(envelopes.as_hop(below[0]),))
        wrong = relayed(lower, rows[1:2], batch_id="b2", hops=(envelopes.as_hop(below[2]),))  # another record's proof
        assert node.tiers.accept(good) == [None]
        [problem] = node.tiers.accept(wrong)
        assert problem is not None and "hops[0] (tdept)" in str(problem)
        report = node.tiers.verify_chains()
        assert (report.records, report.verified, report.hops) == (1, 1, 2)
    finally:
        node.close()


def test_a_peers_file_that_is_not_a_public_keys_file_is_a_config_error(tmp_path: Path):
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "broken.json").write_text("{}", encoding="utf-8")
    with pytest.raises(PeerConfigError, match="broken.json"):
        load_peers(tmp_path / "peers")


# -- 回流: a demand forwarded through the uplink, decided above, answered below --------------------------

UPPER_DEPT = credit_code("11100000000013127")  # 民政部: the upper node's department
LOWER_DEPT = CONSUMER


def _tier_node(tmp_path: Path, role: str, node_id: str, database_url: str, platform: str) -> Config:
    data = tmp_path / role
    config = make_config(data, database_url)
    config = replace(config, node=replace(config.node, id=node_id))
    write_public_keys(KeyStore.load(data / "keys"), node_id)
    (data / "platforms.toml").write_text(platform, encoding="utf-8")
    return config


def _outgoing(node: bootstrap.Node, content_type: str) -> list[Message]:
    """The node's outbox rows of one kind, as the shovel would deliver them to the peer's inbound queue."""
    from adapters.rabbit.wire import unpack

    now = node.lists.clock()
    with node.exchange.uow() as uow:
        rows = [r for r in uow.exchange.due(now + dt.timedelta(days=1), 1000) if r.content_type == content_type]
    return [Message(content_type, body) for row in rows for _, body in unpack(row.body)]


@pytest.fixture
def two_tiers(tmp_path: Path, database_url: str) -> Iterator[tuple[bootstrap.Node, bootstrap.Node]]:
    upper_id, lower_id = f"tu{uuid.uuid4().hex[:8]}", f"tl{uuid.uuid4().hex[:8]}"
    upper_config = _tier_node(tmp_path, "upper", upper_id, database_url,
                              f'[[platform]]\nname = "down"\nkind = "node"\nconsumer_code = "{LOWER_DEPT}"\n'
                              f'lower_node = "{lower_id}"\n')
    # the lower node on its embedded SQLite (the e2e test runs a lower node on PostgreSQL)
    lower_config = _tier_node(tmp_path, "lower", lower_id, "",
                              f'[[platform]]\nname = "up"\nkind = "node"\nconsumer_code = "{UPPER_DEPT}"\n'
                              f'upper_node = "{upper_id}"\n')
    for config, other in ((upper_config, lower_config), (lower_config, upper_config)):
        peers = config.path(config.exchange.peers_dir)
        peers.mkdir(exist_ok=True)
        shutil.copy(other.keys_dir / "public-keys.json", peers / f"{other.node.id}.json")
    upper, lower = bootstrap.build(upper_config), bootstrap.build(lower_config)
    try:
        yield upper, lower
    finally:
        upper.close()
        lower.close()


def test_a_demand_filed_below_is_forwarded_up_decided_there_and_its_answer_comes_down(two_tiers, tmp_path: Path):
    upper, lower = two_tiers
    code = "311140001/000201"
    admin = Principal("admin", UPPER_DEPT, frozenset({"catalog_admin"}))
    upper.catalog.create(admin, resource(code, provider_code=UPPER_DEPT, provider_name="民政部"))
    upper.catalog.publish(admin, code)
    entries, _ = upper.tiers.catalog_upward("down")  # the entry comes down the same uplink
    assert lower.tiers.accept([Message(relay.CATALOG_CONTENT_TYPE, body) for _, body in entries]) == [None]
    requester = Principal("li", LOWER_DEPT, frozenset({"consumer"}))
    filed = lower.lists.file_demand(requester, DemandRequest(LOWER_DEPT, code, purpose="婚姻状况核验（回流）",
                                                             legal_basis="《婚姻登记条例》", contact="李明"))
    assert filed.state is DemandState.UNDER_REVIEW and not filed.grant_id
    with pytest.raises(IllegalTransition, match=f"forwarded to node {upper.config.node.id}"):
        lower.lists.decide(Principal("wang", UPPER_DEPT, frozenset({"reviewer"})), filed.id, True)
    [forwarded] = _outgoing(lower, relay.DEMAND_CONTENT_TYPE)
    assert upper.tiers.accept([forwarded, forwarded]) == [None, None]  # a redelivery files nothing twice
    reviewer = Principal("wang", UPPER_DEPT, frozenset({"reviewer"}))
    [above] = upper.lists.list_demands(reviewer, DemandFilter(department_code=UPPER_DEPT)).rows
    assert (above.requester_code, above.resource_code, above.state) == (LOWER_DEPT, code, DemandState.UNDER_REVIEW)
    assert above.request.contact == "李明" and above.request.purpose == "婚姻状况核验（回流）"
    decided = upper.lists.decide(reviewer, above.id, True, clear_delivery=True)
    with upper.exchange.uow() as uow:  # the downward platform now carries the resource to the department
        assert [(s.consumer_code, s.platform) for s in uow.exchange.subscriptions_for(code)] == [(LOWER_DEPT, "down")]
    [decision] = _outgoing(upper, relay.DECISION_CONTENT_TYPE)
    stranger = KeyStore.create(tmp_path / "stranger")
    forged = Message(relay.DECISION_CONTENT_TYPE, relay.encode_decision(
        {"demand_id": filed.id, "state": "APPROVED"}, "stranger", stranger.active))
    [refused] = lower.tiers.accept([forged])
    assert refused is not None and "not a trusted key of node 'stranger'" in str(refused)
    assert lower.tiers.accept([decision, decision]) == [None, None]
    below = lower.lists.get_demand(requester, filed.id)
    assert below.state is DemandState.APPROVED and below.decided_by == f"node:{upper.config.node.id}/wang"
    with lower.exchange.uow() as uow:
        grant = uow.lists.get_grant(below.grant_id)
        upper_grant = uow.lists.get_grant(decided.grant_id)
    assert grant is not None and upper_grant is None  # the lower node's own grant
    assert grant.items == above.request.items and grant.masking == {} and grant.clear_delivery


def test_a_forwarded_demand_the_upper_node_cannot_file_is_answered_down_as_a_rejection_naming_why(two_tiers):
    upper, lower = two_tiers
    code = "311140001/000202"
    admin = Principal("admin", UPPER_DEPT, frozenset({"catalog_admin"}))
    upper.catalog.create(admin, resource(code, provider_code=UPPER_DEPT, provider_name="民政部"))
    upper.catalog.publish(admin, code)
    lower_keys = KeyStore.load(lower.config.keys_dir)
    body = relay.encode_demand({"demand_id": "XQ-20261201-0000BEEF", "requester_code": LOWER_DEPT,
                                "resource_code": code, "items": ["不存在的信息项"], "purpose": "核验",
                                "legal_basis": "办法", "contact": "李明"}, lower.config.node.id, lower_keys.active)
    assert upper.tiers.accept([Message(relay.DEMAND_CONTENT_TYPE, body)]) == [None]
    [answer] = _outgoing(upper, relay.DECISION_CONTENT_TYPE)
    _, document = relay.decode_decision(answer.body, {upper.config.node.id: KeyStore.load(upper.config.keys_dir).public})
    assert document["state"] == "REJECTED" and "不存在的信息项" in document["reason"]
    assert document["demand_id"] == "XQ-20261201-0000BEEF"
