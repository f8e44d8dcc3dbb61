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


# -- 校核纠错 across tiers: the disputed mark a lower node sets on a record it relayed here ------------------

MINISTRY_NODE = "tministry"


@pytest.fixture
def middle(tmp_path: Path, database_url: str, lower: KeyStore) -> Iterator[bootstrap.Node]:
    """An upper node (of ``lower``) with a departmental subscriber and a node above it of its own."""
    data = tmp_path / "middle"
    config = make_config(data, database_url)
    config = replace(config, node=replace(config.node, id=f"t{uuid.uuid4().hex[:10]}"))
    (data / "peers").mkdir()
    shutil.copy(lower.directory / "public-keys.json", data / "peers" / "lower.json")
    (data / "platforms.toml").write_text(
        f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n'
        f'[[platform]]\nname = "up"\nkind = "node"\nconsumer_code = "{UPPER_DEPT}"\nupper_node = "{MINISTRY_NODE}"\n',
        encoding="utf-8")
    node = bootstrap.build(config)
    try:
        yield node
    finally:
        node.close()


def _subscribe_and_deliver(node: bootstrap.Node, consumer: str, platform: str) -> None:
    reviewer = Principal("wang", PROVIDER, frozenset({"reviewer"}))
    asking = Principal("li", consumer, frozenset({"consumer"}))
    demand = node.lists.file_demand(asking, DemandRequest(consumer, CODE, purpose="低保复核", legal_basis="办法",
                                                          contact="李明"))
    node.lists.decide(reviewer, demand.id, True, clear_delivery=True)
    node.exchange.subscribe(asking, CODE, platform)


def _confirm_all(node: bootstrap.Node) -> list:
    """Confirm every due outbox row as the dispatcher would once the broker took it (deliveries recorded)."""
    from node.pipeline.outbox import SqlOutbox

    now = node.lists.clock()
    with node.exchange.uow() as uow:
        rows = uow.exchange.due(now + dt.timedelta(days=1), 1000)
    SqlOutbox(node.exchange.uow, node.lists.clock, node.lists, claims=False).confirmed([r.id for r in rows])
    return rows


def _notice(signer: KeyStore, record_id: str, objection_id: str, disputed: bool, sender: str = LOWER) -> Message:
    return Message(relay.DISPUTE_CONTENT_TYPE, relay.encode_dispute(
        {"provider_code": PROVIDER, "resource_code": CODE, "record_id": record_id, "objection_id": objection_id,
         "disputed": disputed, "at": "2026-12-01T08:00:00+00:00"}, sender, signer.active))


def test_a_lower_nodes_signed_dispute_notice_marks_the_relayed_record_here_and_goes_on_to_subscribers(
        middle: bootstrap.Node, lower: KeyStore, tmp_path: Path):
    from adapters.rabbit.wire import unpack
    from node.storage.tables import audit_entries

    node = middle
    assert node.tiers.accept([catalog_entry(lower)]) == [None]
    _subscribe_and_deliver(node, CONSUMER, "hhht")
    _subscribe_and_deliver(node, UPPER_DEPT, "up")
    assert node.tiers.accept(relayed(lower, [record(1), record(2)])) == [None, None]
    assert len(_confirm_all(node)) == 2  # one row per subscriber, each delivered
    key = (PROVIDER, CODE, "R-0001")

    def served() -> set:
        with node.exchange.uow() as uow:  # what pulls (PullBatch.disputed) and queries (KeyResult.disputed) ask
            return uow.objections.disputed([key, (PROVIDER, CODE, "R-0002")])

    # bad input first: nothing is applied, each refusal names its problem
    stranger = KeyStore.create(tmp_path / "stranger")
    raised = _notice(lower, "R-0001", "YY-20261201-0000AAAA", True)
    tampered = Message(raised.content_type, raised.body.replace(b'"disputed": true', b'"disputed": false'))
    assert tampered.body != raised.body
    problems = node.tiers.accept([_notice(stranger, "R-0001", "YY-1", True, sender="stranger"), tampered,
                                  _notice(lower, "R-0009", "YY-1", True),
                                  Message(relay.DISPUTE_CONTENT_TYPE, b"{}")])
    assert "not a trusted key of node 'stranger'" in str(problems[0])
    assert "signature: does not verify" in str(problems[1])
    assert "R-0009" in str(problems[2]) and "not relayed here" in str(problems[2])
    assert str(problems[3]).startswith("dispute notice: document")
    assert served() == set()

    # raised below: marked here, re-sent marked to the department's platform, a signed notice goes further up
    assert node.tiers.accept([raised, raised]) == [None, None]  # the redelivery changes nothing
    assert served() == {key}
    rows = _confirm_all(node)
    assert sorted(r.platform for r in rows) == ["hhht", "up"], "one re-send per subscriber, once"
    by_platform = {r.platform: r for r in rows}
    [(_, body)] = unpack(by_platform["hhht"].body)
    from adapters.platforms import codec_for
    envelope = codec_for("regional").decode(body)
    assert envelope.disputed == ("R-0001",)
    assert envelopes.verify(envelope, {node.config.node.id: node.keys.public}) == []  # the node's own signature
    [(_, notice)] = unpack(by_platform["up"].body)
    assert by_platform["up"].content_type == relay.DISPUTE_CONTENT_TYPE
    sender, document = relay.decode_dispute(notice, {node.config.node.id: node.keys.public})
    assert (sender, document["record_id"], document["objection_id"], document["disputed"]) == (
        node.config.node.id, "R-0001", "YY-20261201-0000AAAA", True)

    # an objection raised here to the lower tier's record is refused, naming the node whose provider checks it
    with pytest.raises(IllegalTransition, match=f"raise it at node {LOWER}"):
        node.objections.raise_objection(Principal("li", CONSUMER, frozenset({"consumer"})), CODE, "R-0001", "金额有误")

    # answered below: the mark clears here and the re-send is unmarked; a replayed "raised" changes nothing
    assert node.tiers.accept([_notice(lower, "R-0001", "YY-20261201-0000AAAA", False)]) == [None]
    assert served() == set()
    rows = _confirm_all(node)
    [(_, body)] = unpack({r.platform: r for r in rows}["hhht"].body)
    assert codec_for("regional").decode(body).disputed == ()
    assert node.tiers.accept([raised]) == [None] and served() == set()
    assert _confirm_all(node) == []
    with node.engine.connect() as connection:
        details = list(connection.execute(select(audit_entries.c.detail).where(
            audit_entries.c.action == "tier/disputed-mark")).scalars())
    assert len(details) == 2 and "raised at node" in details[0] and "answered at node" in details[1]


def test_a_resource_that_reached_the_upper_node_from_another_region_is_returned_downward(two_tiers, tmp_path: Path):
    """回流 of another region's resource: its entry came down THROUGH the upper node (route: origin the other
    region, via the upper node), so the demand goes up, the upper node's reviewer decides, the records come
    down with both regions' signatures."""
    upper, lower = two_tiers
    other = KeyStore.create(tmp_path / "other" / "keys")
    write_public_keys(other, "tother")
    for node in (upper, lower):  # the lower node verifies every hop, the other region's too
        shutil.copy(other.directory / "public-keys.json", node.config.path("peers") / "tother.json")
    upper, lower = bootstrap.build(upper.config), bootstrap.build(lower.config)
    try:
        assert upper.tiers.accept([catalog_entry(other, origin="tother", sender="tother")]) == [None]
        entries, _ = upper.tiers.catalog_upward("down")
        assert lower.tiers.accept([Message(relay.CATALOG_CONTENT_TYPE, body) for _, body in entries]) == [None]
        with lower.exchange.uow() as uow:
            assert uow.catalog.route(CODE) == ("tother", upper.config.node.id)
        requester = Principal("li", LOWER_DEPT, frozenset({"consumer"}))
        filed = lower.lists.file_demand(requester, DemandRequest(LOWER_DEPT, CODE, purpose="低保复核（回流）",
                                                                 legal_basis="《社会救助暂行办法》", contact="李明"))
        assert filed.state is DemandState.UNDER_REVIEW and not filed.grant_id  # forwarded, not decided here
        [forwarded] = _outgoing(lower, relay.DEMAND_CONTENT_TYPE)
        assert upper.tiers.accept([forwarded]) == [None]
        reviewer = Principal("wang", PROVIDER, frozenset({"reviewer"}))  # the resource's provider, at the upper node
        [above] = upper.lists.list_demands(reviewer, DemandFilter(department_code=PROVIDER)).rows
        assert (above.requester_code, above.resource_code) == (LOWER_DEPT, CODE)
        upper.lists.decide(reviewer, above.id, True, clear_delivery=True)
        [decision] = _outgoing(upper, relay.DECISION_CONTENT_TYPE)
        assert lower.tiers.accept([decision]) == [None]
        assert lower.lists.get_demand(requester, filed.id).state is DemandState.APPROVED
        # the other region's records reach the upper node, which relays them down to the lower node
        assert upper.tiers.accept(relayed(other, [record(1), record(2)], node_id="tother")) == [None, None]
        down = _outgoing(upper, relay.CONTENT_TYPE)
        assert len(down) == 2
        assert lower.tiers.accept(down) == [None, None]
        report = lower.tiers.verify_chains()
        assert (report.records, report.verified, report.hops, report.problems) == (2, 2, 4, [])
    finally:
        upper.close()
        lower.close()


def _forwarded(upper: bootstrap.Node, lower: bootstrap.Node, code: str):
    """A resource of the upper node, its entry down, a demand filed below and forwarded up: (lower demand,
    upper demand)."""
    admin = Principal("admin", UPPER_DEPT, frozenset({"catalog_admin"}))
    upper.catalog.create(admin, resource(code, provider_code=UPPER_DEPT, provider_name="民政部"))
    upper.catalog.publish(admin, code)
    entries, _ = upper.tiers.catalog_upward("down")
    lower.tiers.accept([Message(relay.CATALOG_CONTENT_TYPE, body) for _, body in entries])
    requester = Principal("li", LOWER_DEPT, frozenset({"consumer"}))
    filed = lower.lists.file_demand(requester, DemandRequest(LOWER_DEPT, code, purpose="婚姻状况核验（回流）",
                                                             legal_basis="《婚姻登记条例》", contact="李明"))
    assert upper.tiers.accept(_outgoing(lower, relay.DEMAND_CONTENT_TYPE)[-1:]) == [None]
    reviewer = Principal("wang", UPPER_DEPT, frozenset({"reviewer"}))
    above = next(d for d in upper.lists.list_demands(reviewer, DemandFilter(department_code=UPPER_DEPT)).rows
                 if d.resource_code == code)
    return filed, above


def _audited(node: bootstrap.Node, action: str) -> list[str]:
    from node.storage.tables import audit_entries

    with node.engine.connect() as connection:
        return list(connection.execute(select(audit_entries.c.detail).where(
            audit_entries.c.action == action).order_by(audit_entries.c.at)).scalars())


def test_a_forwarded_demand_withdrawn_below_is_withdrawn_at_the_node_that_decides_it(two_tiers):
    upper, lower = two_tiers
    _forwarded(upper, lower, "311140001/000205")  # a node forwards more than one demand to its upper node
    filed, above = _forwarded(upper, lower, "311140001/000203")
    requester = Principal("li", LOWER_DEPT, frozenset({"consumer"}))
    assert lower.lists.withdraw(requester, filed.id, "已通过其他渠道获取").state is DemandState.WITHDRAWN
    [change] = _outgoing(lower, relay.DEMAND_CHANGE_CONTENT_TYPE)
    assert upper.tiers.accept([change, change]) == [None, None]  # the redelivery changes nothing
    reviewer = Principal("wang", UPPER_DEPT, frozenset({"reviewer"}))
    now_above = upper.lists.get_demand(reviewer, above.id)
    assert now_above.state is DemandState.WITHDRAWN and now_above.reason == "已通过其他渠道获取"
    with pytest.raises(IllegalTransition):
        upper.lists.decide(reviewer, above.id, True)
    [detail] = _audited(upper, "tier/demand-change")
    assert filed.id in detail and "withdrawn by its requester" in detail


def test_a_refusal_contested_below_is_disputed_and_decided_above_and_every_step_comes_down(two_tiers):
    from catalog.disputes import DisputeState

    upper, lower = two_tiers
    upper = bootstrap.build(replace(upper.config, node=replace(upper.config.node, department_code=UPPER_DEPT)))
    try:
        filed, above = _forwarded(upper, lower, "311140001/000204")
        reviewer = Principal("wang", UPPER_DEPT, frozenset({"reviewer"}))
        upper.lists.decide(reviewer, above.id, False, "未说明履职依据")
        assert lower.tiers.accept(_outgoing(upper, relay.DECISION_CONTENT_TYPE)) == [None]
        requester = Principal("li", LOWER_DEPT, frozenset({"consumer"}))
        assert lower.lists.get_demand(requester, filed.id).state is DemandState.REJECTED
        # the refused department contests at its own node; the dispute is answered where the demand is decided
        below, _ = lower.disputes.file(requester, filed.id, "《婚姻登记条例》第二条：婚姻状况核验是本部门法定职责")
        with pytest.raises(IllegalTransition, match=f"forwarded to node {upper.config.node.id}"):
            lower.disputes.answer(Principal("w", UPPER_DEPT, frozenset({"reviewer"})), below.id, True, "")
        [contest] = _outgoing(lower, relay.DEMAND_CHANGE_CONTENT_TYPE)
        assert upper.tiers.accept([contest, contest]) == [None, None]
        with upper.exchange.uow() as uow:
            dispute = uow.lists.dispute_of(above.id)
        assert dispute is not None and dispute.state is DisputeState.AWAITING_PROVIDER
        assert "法定职责" in dispute.duty_basis and dispute.filed_by.startswith(f"node:{lower.config.node.id}/")
        # the provider maintains its refusal: the step comes down
        upper.disputes.answer(reviewer, dispute.id, False, "涉及个人隐私")
        steps = _outgoing(upper, relay.DISPUTE_STEP_CONTENT_TYPE)
        assert lower.tiers.accept(steps) == [None]
        with lower.exchange.uow() as uow:
            assert uow.lists.dispute_of(filed.id).state is DisputeState.AWAITING_COORDINATOR
        # the coordinator of the upper node grants with conditions: the grant comes down, the records will too
        coordinator = Principal("chief", UPPER_DEPT, frozenset({"coordinator"}))
        upper.disputes.decide(coordinator, dispute.id, True, "履职必需", "仅用于婚姻登记核验")
        steps = _outgoing(upper, relay.DISPUTE_STEP_CONTENT_TYPE)
        assert lower.tiers.accept(steps) == [None, None]  # the earlier step again changes nothing
        decided = lower.lists.get_demand(requester, filed.id)
        assert decided.state is DemandState.APPROVED and decided.grant_id and "仅用于婚姻登记核验" in decided.reason
        with lower.exchange.uow() as uow:
            mirrored = uow.lists.dispute_of(filed.id)
            assert uow.lists.get_grant(decided.grant_id) is not None
        assert mirrored.state is DisputeState.GRANTED and mirrored.decided_by == f"node:{upper.config.node.id}/chief"
        with upper.exchange.uow() as uow:
            assert (LOWER_DEPT, "down") in {(s.consumer_code, s.platform)
                                            for s in uow.exchange.subscriptions_for("311140001/000204")}
        assert len(_audited(upper, "tier/demand-change")) == 1
        assert len(_audited(lower, "tier/dispute-step")) == 2
    finally:
        upper.close()


# -- 校核纠错 raised above: an objection at the upper node goes down to the provider's node ---------------------

OBJECTOR = credit_code("11150100011600099")  # a department at the upper node the record was delivered to


@pytest.fixture
def objection_tiers(tmp_path: Path, database_url: str) -> Iterator[tuple[bootstrap.Node, bootstrap.Node]]:
    """A lower node whose provider's resource goes up, and an upper node with a departmental platform."""
    upper_id, lower_id = f"tu{uuid.uuid4().hex[:8]}", f"tl{uuid.uuid4().hex[:8]}"
    upper_config = _tier_node(tmp_path, "upper", upper_id, database_url,
                              f'[[platform]]\nname = "down"\nkind = "node"\nconsumer_code = "{LOWER_DEPT}"\n'
                              f'lower_node = "{lower_id}"\n'
                              f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{OBJECTOR}"\n')
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


def _ingest(node: bootstrap.Node, key: object, rows: list[Record]) -> None:
    from node.pipeline import provider_batch

    node.ingest.ingest(Principal("platform", PROVIDER, frozenset({"provider"})),
                       provider_batch(PROVIDER, CODE, rows, key))  # type: ignore[arg-type]


def _served(node: bootstrap.Node, *record_ids: str) -> set:
    """What pulls (PullBatch.disputed) and queries (KeyResult.disputed) of the node ask."""
    with node.exchange.uow() as uow:
        return uow.objections.disputed([(PROVIDER, CODE, r) for r in record_ids])


def _relayed_up(upper: bootstrap.Node, lower: bootstrap.Node, objector: str) -> object:
    """The lower node's resource and two records up the link, delivered at the upper node to ``objector``;
    the provider's key (it sends the correction later)."""
    from tests.fault.support import Key

    admin = Principal("admin", PROVIDER, frozenset({"catalog_admin"}))
    lower.catalog.create(admin, resource(CODE))
    lower.catalog.publish(admin, CODE)
    entries, _ = lower.tiers.catalog_upward("up")
    assert upper.tiers.accept([Message(relay.CATALOG_CONTENT_TYPE, body) for _, body in entries]) == [None]
    _subscribe_and_deliver(lower, UPPER_DEPT, "up")
    _subscribe_and_deliver(upper, objector, "hhht")
    key = Key()
    key.kid = lower.exchange.register_key(admin, PROVIDER, key.algorithm, key.pem).kid
    _ingest(lower, key, [record(1), record(2)])
    assert upper.tiers.accept(_outgoing(lower, relay.CONTENT_TYPE)) == [None, None]
    _confirm_all(lower), _confirm_all(upper)  # delivered: to the upper node, and there to the objector
    return key


@pytest.mark.parametrize("answer", ["corrected", "confirmed"])
def test_an_objection_raised_above_is_filed_below_answered_there_and_its_outcome_comes_up(
        objection_tiers, tmp_path: Path, answer: str):
    from catalog.errors import InvalidField
    from catalog.objections import ObjectionState
    from security.policy import PermissionDenied

    upper, lower = objection_tiers
    upper_id, lower_id = upper.config.node.id, lower.config.node.id
    key = _relayed_up(upper, lower, OBJECTOR)
    objector = Principal("zhao", OBJECTOR, frozenset({"consumer"}))
    # the same checks as for a local objection: evidence required, only a department it was delivered to
    with pytest.raises(InvalidField, match="evidence"):
        upper.objections.raise_objection(objector, CODE, "R-0001", " ")
    with pytest.raises(PermissionDenied):
        upper.objections.raise_objection(Principal("li", UPPER_DEPT, frozenset({"consumer"})), CODE, "R-0001", "有误")
    raised = upper.objections.raise_objection(objector, CODE, "R-0001", "姓名有误：应为张一", item="姓名")
    assert raised.state is ObjectionState.OPEN and _served(upper, "R-0001", "R-0002") == {(PROVIDER, CODE, "R-0001")}
    reviewer = Principal("wang", PROVIDER, frozenset({"reviewer"}))
    with pytest.raises(IllegalTransition, match=f"forwarded to node {lower_id}"):
        upper.objections.answer(reviewer, raised.id, reason="无误")
    [document] = _outgoing(upper, relay.OBJECTION_CONTENT_TYPE)

    # bad input below: a stranger's or a tampered document is dead-lettered naming why, nothing is filed
    stranger = KeyStore.create(tmp_path / "stranger")
    _, entry = relay.decode_objection(document.body, {upper_id: upper.keys.public})
    forged = Message(relay.OBJECTION_CONTENT_TYPE, relay.encode_objection(entry, "stranger", stranger.active))
    unsigned = Message(relay.OBJECTION_CONTENT_TYPE, document.body.replace(b'"R-0001"', b'"R-0002"'))
    problems = lower.tiers.accept([forged, unsigned, Message(relay.OBJECTION_CONTENT_TYPE, b"{}")])
    assert "not a trusted key of node 'stranger'" in str(problems[0])
    assert "signature: does not verify" in str(problems[1])
    assert str(problems[2]).startswith("forwarded objection: document")
    from node.storage.tables import objections as objections_table
    assert count(lower, objections_table) == 0 and _served(lower, "R-0001") == set()

    # filed below for the provider, named for the upper node's consumer; the mark is set there and goes up
    assert lower.tiers.accept([document, document]) == [None, None]  # the redelivery files nothing twice
    assert count(lower, objections_table) == 1
    with lower.exchange.uow() as uow:
        below = uow.objections.get(uow.tiers.objections.from_peer(upper_id, raised.id, "PROVIDER").objection_id)
    assert (below.raiser_code, below.raised_by, below.item, below.evidence) == (
        OBJECTOR, f"node:{upper_id}/zhao", "姓名", "姓名有误：应为张一")
    assert _served(lower, "R-0001") == {(PROVIDER, CODE, "R-0001")}
    assert upper.tiers.accept(_outgoing(lower, relay.DISPUTE_CONTENT_TYPE)) == [None]
    with upper.exchange.uow() as uow:  # the lower node's own mark, besides the forwarded objection's
        assert uow.tiers.disputes.mark(PROVIDER, CODE, "R-0001", below.id, lower_id, True, upper.lists.clock()) is False

    # overdue: escalated to the origin node's coordinator only (the upper node's copy waits for the answer)
    later = upper.lists.clock() + dt.timedelta(days=40)
    upper.lists.clock, lower.lists.clock = (lambda: later), (lambda: later)
    assert upper.objections.escalate_overdue() == []
    assert [o.id for o in lower.objections.escalate_overdue()] == [below.id]

    # the provider answers at its own node: the outcome comes up to the objector, the mark clears at both
    if answer == "corrected":
        _ingest(lower, key, [record(3, 公民身份号码="360426********0071", 姓名="张一", 纳入保障日期="2025-06-01")])
        lower.objections.answer(reviewer, below.id, corrected_record_id="R-0003", reason="已更正姓名")
    else:
        lower.objections.answer(reviewer, below.id, reason="经核对户籍信息，姓名无误")
    answers = _outgoing(lower, relay.OBJECTION_ANSWER_CONTENT_TYPE)
    assert len(answers) == 1
    forged = Message(relay.OBJECTION_ANSWER_CONTENT_TYPE, relay.encode_objection_answer(
        {"objection_id": raised.id, "state": "CONFIRMED", "answer": "无误"}, "stranger", stranger.active))
    [refused] = upper.tiers.accept([forged])
    assert "not a trusted key of node 'stranger'" in str(refused)
    assert upper.objections.get(objector, raised.id).open
    assert upper.tiers.accept(answers + answers + _outgoing(lower, relay.DISPUTE_CONTENT_TYPE)) == [None] * 4
    outcome = upper.objections.get(objector, raised.id)
    assert outcome.answered_by == f"node:{lower_id}/wang" and outcome.late and outcome.escalated_at is not None
    if answer == "corrected":
        assert (outcome.state, outcome.corrected_by, outcome.answer) == (ObjectionState.CORRECTED, "R-0003", "已更正姓名")
    else:
        assert (outcome.state, outcome.answer) == (ObjectionState.CONFIRMED, "经核对户籍信息，姓名无误")
    assert [o.id for o in upper.objections.list(objector, resource_code=CODE).rows] == [raised.id]
    assert _served(upper, "R-0001") == set() and _served(lower, "R-0001") == set()
    # every step is audited at both nodes
    assert len(_audited(upper, "tier/objection-forwarded")) == 1
    assert len(_audited(upper, "tier/objection-answer")) == 1 and lower_id in _audited(upper, "tier/objection-answer")[0]
    assert len(_audited(lower, "tier/objection")) == 1 and "for its provider" in _audited(lower, "tier/objection")[0]
    assert len(_audited(lower, "tier/objection-answer-sent")) == 1


def test_an_objection_raised_at_the_ministry_goes_through_the_region_to_the_department_and_back(
        tmp_path: Path, database_url: str):
    """Multi-hop: each hop forwards toward the origin by the catalog's route, keeps its copy, and passes the
    answer back up."""
    from catalog.objections import ObjectionState
    from node.storage.objections_repository import ObjectionFilter

    ministry_id, region_id, dept_id = (f"t{role}{uuid.uuid4().hex[:6]}" for role in ("m", "r", "d"))
    region_dept, ministry_dept = UPPER_DEPT, credit_code("11100000000013999")
    ministry = _tier_node(tmp_path, "ministry", ministry_id, database_url,
                          f'[[platform]]\nname = "down"\nkind = "node"\nconsumer_code = "{region_dept}"\n'
                          f'lower_node = "{region_id}"\n'
                          f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{OBJECTOR}"\n')
    region = _tier_node(tmp_path, "region", region_id, "",
                        f'[[platform]]\nname = "down"\nkind = "node"\nconsumer_code = "{LOWER_DEPT}"\n'
                        f'lower_node = "{dept_id}"\n'
                        f'[[platform]]\nname = "up"\nkind = "node"\nconsumer_code = "{ministry_dept}"\n'
                        f'upper_node = "{ministry_id}"\n')
    dept = _tier_node(tmp_path, "dept", dept_id, "",
                      f'[[platform]]\nname = "up"\nkind = "node"\nconsumer_code = "{region_dept}"\n'
                      f'upper_node = "{region_id}"\n')
    for config, others in ((ministry, (region, dept)), (region, (ministry, dept)), (dept, (region,))):
        peers = config.path(config.exchange.peers_dir)
        peers.mkdir(exist_ok=True)
        for other in others:
            shutil.copy(other.keys_dir / "public-keys.json", peers / f"{other.node.id}.json")
    m, r, d = bootstrap.build(ministry), bootstrap.build(region), bootstrap.build(dept)
    try:
        from tests.fault.support import Key

        admin = Principal("admin", PROVIDER, frozenset({"catalog_admin"}))
        d.catalog.create(admin, resource(CODE))
        d.catalog.publish(admin, CODE)
        for lower, upper in ((d, r), (r, m)):
            entries, _ = lower.tiers.catalog_upward("up")
            assert upper.tiers.accept([Message(relay.CATALOG_CONTENT_TYPE, body) for _, body in entries]) == [None]
        _subscribe_and_deliver(d, region_dept, "up")
        _subscribe_and_deliver(r, ministry_dept, "up")
        _subscribe_and_deliver(m, OBJECTOR, "hhht")
        key = Key()
        key.kid = d.exchange.register_key(admin, PROVIDER, key.algorithm, key.pem).kid
        _ingest(d, key, [record(1)])
        for lower, upper in ((d, r), (r, m)):
            assert upper.tiers.accept(_outgoing(lower, relay.CONTENT_TYPE)) == [None]
            _confirm_all(lower)
        _confirm_all(m)
        with m.exchange.uow() as uow:
            assert uow.catalog.route(CODE) == (dept_id, region_id)

        raised = m.objections.raise_objection(Principal("zhao", OBJECTOR, frozenset({"consumer"})), CODE, "R-0001",
                                              "纳入保障日期有误")
        assert r.tiers.accept(_outgoing(m, relay.OBJECTION_CONTENT_TYPE)) == [None]  # the region's copy, passed on
        assert d.tiers.accept(_outgoing(r, relay.OBJECTION_CONTENT_TYPE)) == [None]  # filed for the provider
        with d.exchange.uow() as uow:
            [below] = uow.objections.list(ObjectionFilter(), after_id="", limit=10)
        assert below.raiser_code == OBJECTOR and below.raised_by == f"node:{region_id}/node:{ministry_id}/zhao"
        assert r.tiers.accept(_outgoing(d, relay.DISPUTE_CONTENT_TYPE)) == [None]
        assert m.tiers.accept(_outgoing(r, relay.DISPUTE_CONTENT_TYPE)) == [None, None]  # the region's and the dept's
        assert all(_served(n, "R-0001") for n in (m, r, d))
        assert d.objections.escalate_overdue() == [] and r.objections.escalate_overdue() == []

        d.objections.answer(Principal("wang", PROVIDER, frozenset({"reviewer"})), below.id, reason="经核对无误")
        assert r.tiers.accept(_outgoing(d, relay.OBJECTION_ANSWER_CONTENT_TYPE)) == [None]
        assert m.tiers.accept(_outgoing(r, relay.OBJECTION_ANSWER_CONTENT_TYPE)) == [None]
        assert r.tiers.accept(_outgoing(d, relay.DISPUTE_CONTENT_TYPE)) == [None, None]
        assert m.tiers.accept(_outgoing(r, relay.DISPUTE_CONTENT_TYPE)) == [None] * 4
        outcome = m.objections.get(Principal("zhao", OBJECTOR, frozenset({"consumer"})), raised.id)
        assert (outcome.state, outcome.answer) == (ObjectionState.CONFIRMED, "经核对无误")
        assert outcome.answered_by == f"node:{region_id}/node:{dept_id}/wang"
        assert not any(_served(n, "R-0001") for n in (m, r, d))
        [passed] = _audited(r, "tier/objection")
        assert f"passed on toward node {dept_id}" in passed
    finally:
        for node in (m, r, d):
            node.close()
