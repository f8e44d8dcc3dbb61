"""Three tiers (DESIGN §1, §7, §10; issue 6 item 3): a department node, a regional node and the ministry node,
three `exnode serve` processes with their own data directories, databases (the region on PostgreSQL, the
others on SQLite) and keys, on the one local
RabbitMQ in three vhosts of their own, linked by RabbitMQ shovels that `exnode tier link` configures.

A record ingested at the department reaches the region and then the ministry, where every hop's signature
verifies (`exnode tier verify-chain`), and the department's catalog entries are visible, read-only and
marked with their origin. 回流 goes the other way: the regional department files its demand for a ministry
resource at its own node, which forwards it through its uplink; the ministry's reviewer decides it there,
the decision comes down, and the records flow down to the region through a shovel as well, verified there,
relayed to the department's platform and pulled there like any other; a 不予共享 resource is refused
citing the rule. The fault: the regional node is killed for a while during the flow and started
again; at the ministry no record is lost and none is stored twice.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pika
import psycopg
import pytest
from exnode.v1 import catalog_pb2, catalog_pb2_grpc, exchange_pb2_grpc, lists_pb2, lists_pb2_grpc
from exnode.v1 import exchange_pb2 as pb
from sqlalchemy import func, select

from catalog.model import OpenType, ShareType
from catalog.records import Operation, Record
from node.storage.database import make_engine
from node.storage.secrecy import Sealer, open_payload
from node.storage.tables import batches, outbox, records, relayed_records
from security.keys import KeyStore
from tests.conftest import credit_code
from tests.fault.support import LOW_INCOME, PROVIDER, Ingestor, Key, ServedNode, exnode, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(900)]  # four nodes start in the fixture

REGION_DEPT = credit_code("11150000011595843")  # the regional department (自治区民政厅) running the regional node
MINISTRY_DEPT = credit_code("11100000000013127")  # the ministry (民政部) running the top node
OTHER_DEPT = credit_code("11152900011595843")  # another region's department (its own regional node)
SIZE = 50
REGION_PLATFORM = "region-hhht"  # the regional department's platform at its own node (regional JSON)


def rabbitmqctl(*args: str) -> None:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"rabbitmqctl {' '.join(args)}: {result.stderr}"


@dataclass
class Tiers:
    department: ServedNode
    region: ServedNode
    ministry: ServedNode
    key: Key
    vhosts: dict[str, str]
    other: ServedNode | None = None
    """Another region under the same ministry (回流 of a resource between regions)."""
    next_record: int = 1

    def ingest(self, batches: int, tag: str) -> Ingestor:
        provider = Ingestor(lambda: self.department.channel_as(PROVIDER, ("provider",)), self.key, batches=batches,
                            size=SIZE, first=self.next_record, tag=f"{tag}{uuid.uuid4().hex[:6]}")
        self.next_record += batches * SIZE
        return provider


def _node(tmp_path: Path, role: str, node_id: str, dept: str, vhost: str, *, sample: bool,
          database_url: str = "") -> ServedNode:
    data = tmp_path / role
    init = exnode("init", "--data", str(data), "--dev", "--node-id", node_id, "--department-code", dept,
                  *(["--sample"] if sample else []))
    assert init.returncode == 0, init.stderr
    config = data / "exnode.toml"
    text = config.read_text(encoding="utf-8")
    default = 'url = "amqp://guest:guest@127.0.0.1:5672/%2F"'
    assert default in text
    text = text.replace(default, f'url = "amqp://guest:guest@127.0.0.1:5672/{vhost}"')
    if database_url:  # `exnode serve` migrates it; init left nothing in SQLite that the node needs
        text = text.replace('[database]\nurl = ""', f'[database]\nurl = "{database_url}"')
        assert database_url in text
    config.write_text(text, encoding="utf-8")
    return ServedNode(data, tmp_path / f"{role}.log")


def _upward(node: ServedNode, name: str, consumer: str, upper: ServedNode) -> None:
    (node.data / "platforms.toml").write_text(
        f'[[platform]]\nname = "{name}"\nkind = "node"\nconsumer_code = "{consumer}"\nupper_node = "{upper.node_id}"\n',
        encoding="utf-8")


def _downward(node: ServedNode, name: str, consumer: str, lower: ServedNode) -> None:
    (node.data / "platforms.toml").write_text(
        f'[[platform]]\nname = "{name}"\nkind = "node"\nconsumer_code = "{consumer}"\nlower_node = "{lower.node_id}"\n',
        encoding="utf-8")


def _trust(node: ServedNode, *lower: ServedNode) -> None:
    (node.data / "peers").mkdir(exist_ok=True)
    for peer in lower:
        shutil.copy(peer.data / "keys" / "public-keys.json", node.data / "peers" / f"{peer.node_id}.json")


def _link(lower: ServedNode, lower_vhost: str, platform: str, upper: ServedNode, upper_vhost: str) -> None:
    result = exnode("tier", "link", "--lower-vhost", lower_vhost, "--lower-node", lower.node_id, "--platform", platform,
                    "--upper-vhost", upper_vhost, "--upper-node", upper.node_id, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "running"


def _foreign_entry(node: ServedNode) -> catalog_pb2.Resource | None:
    catalog = catalog_pb2_grpc.CatalogServiceStub(node.channel_as(MINISTRY_DEPT, ("consumer",)))
    found = catalog.ListResources(catalog_pb2.ListResourcesRequest(query="最低生活保障"), timeout=30).resources
    return next((r for r in found if r.code == LOW_INCOME), None)


def _grant_and_subscribe(at: ServedNode, consumer: str, platform: str) -> None:
    """``consumer`` files a demand for 低保 at node ``at``, the provider's reviewer approves it there, and the
    consumer subscribes its platform (the upper node)."""
    lists = lists_pb2_grpc.ListsServiceStub(at.channel_as(consumer, ("consumer",)))
    demand = lists.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=LOW_INCOME, purpose="低保数据逐级汇交", legal_basis="社会救助暂行办法", contact="王芳")), timeout=30)
    reviewer = lists_pb2_grpc.ListsServiceStub(at.channel_as(PROVIDER, ("reviewer",)))
    reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=demand.id, approve=True, clear_delivery=True), timeout=30)
    subscriber = exchange_pb2_grpc.ExchangeServiceStub(at.channel_as(consumer, ("consumer",)))
    subscriber.Subscribe(pb.SubscribeRequest(resource_code=LOW_INCOME, platform=platform), timeout=30)


@pytest.fixture(scope="module")
def region_database(postgres_server: str) -> Iterator[str]:
    """The regional node runs on PostgreSQL (the other two on SQLite): its own database, dropped after."""
    name = f"exnode_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory, region_database: str) -> Iterator[Tiers]:
    tmp_path = tmp_path_factory.mktemp("tiers")
    run = uuid.uuid4().hex[:10]
    vhosts = {role: f"t{run}-{role}" for role in ("department", "region", "ministry", "other")}
    nodes: list[ServedNode] = []
    for vhost in vhosts.values():
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        department = _node(tmp_path, "department", f"t{run}d", PROVIDER, vhosts["department"], sample=True)
        region = _node(tmp_path, "region", f"t{run}r", REGION_DEPT, vhosts["region"], sample=False,
                       database_url=region_database)
        ministry = _node(tmp_path, "ministry", f"t{run}m", MINISTRY_DEPT, vhosts["ministry"], sample=False)
        other = _node(tmp_path, "other", f"t{run}o", OTHER_DEPT, vhosts["other"], sample=False)
        nodes += [department, region, ministry, other]
        _upward(department, "region", REGION_DEPT, region)
        _upward(region, "ministry", MINISTRY_DEPT, ministry)
        _upward(other, "ministry", MINISTRY_DEPT, ministry)
        with (region.data / "platforms.toml").open("a", encoding="utf-8") as platforms:  # the department's own
            platforms.write(f'[[platform]]\nname = "{REGION_PLATFORM}"\nkind = "regional"\n'
                            f'consumer_code = "{REGION_DEPT}"\n')
        _downward(ministry, "region-down", REGION_DEPT, region)
        _trust(region, department, ministry, other)  # what comes down from the ministry, and every hop of it
        _trust(ministry, department, region, other)  # the top checks every hop, so it knows every lower node's keys
        _link(department, vhosts["department"], "region", region, vhosts["region"])
        _link(region, vhosts["region"], "ministry", ministry, vhosts["ministry"])
        _link(ministry, vhosts["ministry"], "region-down", region, vhosts["region"])  # 回流: the same shovel, down
        _link(other, vhosts["other"], "ministry", ministry, vhosts["ministry"])
        for node in nodes:
            node.start()
        # The department's catalog goes up by itself (the uplink); the region passes it on.
        wait_until(lambda: _foreign_entry(region) is not None, 60, "the 低保 entry reached the region")
        wait_until(lambda: _foreign_entry(ministry) is not None, 60, "the 低保 entry reached the ministry")
        key = Key()
        admin = exchange_pb2_grpc.ExchangeServiceStub(department.channel_as(PROVIDER, ("catalog_admin",)))
        key.kid = admin.RegisterKey(pb.RegisterKeyRequest(department_code=PROVIDER, algorithm="Ed25519",
                                                          public_pem=key.pem), timeout=30).key_id
        _grant_and_subscribe(department, REGION_DEPT, "region")
        _grant_and_subscribe(region, MINISTRY_DEPT, "ministry")
        yield Tiers(department, region, ministry, key, vhosts, other=other)
    finally:
        for node in nodes:
            node.close()
        for vhost in vhosts.values():
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=120)


def stored_ids(node: ServedNode) -> list[str]:
    engine = make_engine(node.config.database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(records.c.record_id).where(
                records.c.provider_code == PROVIDER, records.c.resource_code == LOW_INCOME)).scalars())
    finally:
        engine.dispose()


def payloads(node: ServedNode) -> list[dict]:
    """The stored payloads, opened with the node's keys (they are encrypted at rest)."""
    engine = make_engine(node.config.database_url)
    sealer = Sealer(KeyStore.load(node.config.keys_dir))
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(records.c.provider_code, records.c.resource_code, records.c.record_id,
                                             records.c.payload, records.c.payload_key)).all()
            assert all(row.payload_key for row in rows), "a record stored in clear"
            return [json.loads(open_payload(sealer, connection, row)) for row in rows]
    finally:
        engine.dispose()


def relayed_count(node: ServedNode) -> int:
    engine = make_engine(node.config.database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(relayed_records)).scalar_one()
    finally:
        engine.dispose()


def dead_letters(vhost: str, node: ServedNode) -> int:
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        return connection.channel().queue_declare(f"exnode.{node.node_id}.dlq", passive=True).method.message_count


def queued(vhost: str, queue: str) -> int:
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def verify_chain(node: ServedNode) -> dict:
    result = exnode("tier", "verify-chain", "--data", str(node.data), "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def arrived_everywhere(tiers: Tiers, wanted: set[str]) -> bool:
    return wanted <= set(stored_ids(tiers.ministry))


def test_a_record_published_at_the_department_reaches_the_ministry_with_every_hop_signature(tiers: Tiers):
    provider = tiers.ingest(batches=10, tag="e").start()
    provider.join(120)
    sent = provider.acknowledged_ids()
    assert len(sent) == 10 * SIZE

    wait_until(lambda: arrived_everywhere(tiers, sent), 90,
               lambda: f"{len(sent & set(stored_ids(tiers.ministry)))}/{len(sent)} records at the ministry")
    for node in (tiers.region, tiers.ministry):
        ids = stored_ids(node)
        assert len(ids) == len(set(ids)) and sent <= set(ids), f"{node.node_id}: records lost or doubled"
    chain = verify_chain(tiers.ministry)
    assert chain["problems"] == [] and chain["records"] == chain["verified"] >= len(sent)
    assert chain["hops"] == 2 * chain["records"], "each record carries the department's and the region's signature"
    assert dead_letters(tiers.vhosts["region"], tiers.region) == 0
    assert dead_letters(tiers.vhosts["ministry"], tiers.ministry) == 0
    # What goes up is what the grants allow: identity numbers masked at the department, relayed as they are.
    assert {p["公民身份号码"] for p in payloads(tiers.ministry)} == {"360426********0071"}

    entry = _foreign_entry(tiers.ministry)
    assert entry is not None and entry.origin_node == tiers.department.node_id
    assert entry.status == catalog_pb2.PUBLISHED
    admin = catalog_pb2_grpc.CatalogServiceStub(tiers.ministry.channel_as(PROVIDER, ("catalog_admin",)))
    with pytest.raises(grpc.RpcError) as refused:
        admin.RetireResource(catalog_pb2.RetireResourceRequest(code=LOW_INCOME, reason="not here"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert tiers.department.node_id in refused.value.details()


def test_a_regional_node_down_for_a_while_loses_and_doubles_nothing_at_the_ministry(tiers: Tiers):
    before = len(stored_ids(tiers.ministry))
    provider = tiers.ingest(batches=20, tag="k").start()
    wait_until(lambda: len(provider.answered) >= 4 or provider.failure, 60, "the department answered 4 batches")
    tiers.region.kill()
    wait_until(lambda: len(provider.answered) >= 12 or provider.failure, 60,
               "the department kept answering while the region was down")
    # The department's shovel keeps filling the region's inbound queue while nobody consumes it.
    wait_until(lambda: queued(tiers.vhosts["region"], f"exnode.{tiers.region.node_id}.in") >= SIZE, 60,
               "records waited in the region's inbound queue")
    time.sleep(1)
    tiers.region.start()
    provider.join(120)
    sent = provider.acknowledged_ids()
    assert len(sent) == 20 * SIZE

    wait_until(lambda: arrived_everywhere(tiers, sent), 90,
               lambda: f"{len(sent & set(stored_ids(tiers.ministry)))}/{len(sent)} records at the ministry")
    ids = stored_ids(tiers.ministry)
    assert len(ids) == len(set(ids)) == before + len(sent), "a record was stored twice or one is missing"
    assert relayed_count(tiers.ministry) == len(ids)
    engine = make_engine(tiers.ministry.config.database_url)
    try:
        with engine.connect() as connection:  # each stored group counts only the records it added
            assert connection.execute(select(func.sum(batches.c.record_count))).scalar_one() == len(ids)
    finally:
        engine.dispose()
    chain = verify_chain(tiers.ministry)
    assert chain["problems"] == [] and chain["verified"] == len(ids)
    assert dead_letters(tiers.vhosts["ministry"], tiers.ministry) == 0
    engine = make_engine(tiers.region.config.database_url)
    try:
        with engine.connect() as connection:
            pending = connection.execute(select(func.count()).select_from(outbox)
                                         .where(outbox.c.state != "CONFIRMED")).scalar_one()
    finally:
        engine.dispose()
    assert pending == 0, "the region still holds undelivered outbox rows"


MARRIAGE = "311140003/000009"  # a resource of the ministry's own (婚姻登记), returned to the region
HOUSEHOLD_CHECKS = "311140003/000010"  # the ministry's 不予共享 resource


def _publish_at_ministry(tiers: Tiers, code: str, **changes: object) -> None:
    from node.grpc.convert import metadata_to_proto
    from tests.conftest import resource

    admin = catalog_pb2_grpc.CatalogServiceStub(tiers.ministry.channel_as(MINISTRY_DEPT, ("catalog_admin",)))
    meta = resource(code, name="婚姻登记信息", provider_code=MINISTRY_DEPT, provider_name="民政部", **changes)
    admin.CreateResource(catalog_pb2.CreateResourceRequest(metadata=metadata_to_proto(meta)), timeout=30)
    admin.PublishResource(catalog_pb2.PublishResourceRequest(code=code), timeout=30)


def _entry_at(node: ServedNode, code: str) -> catalog_pb2.Resource | None:
    catalog = catalog_pb2_grpc.CatalogServiceStub(node.channel_as(REGION_DEPT, ("consumer",)))
    try:
        return catalog.GetResource(catalog_pb2.GetResourceRequest(code=code), timeout=30)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def test_data_returned_downward_reaches_the_region_verified_and_is_pulled_there(tiers: Tiers, tmp_path: Path):
    from node.clients.pull import TrustedNode, pull
    from node.pipeline import provider_batch
    from security.keys import KeyStore
    from tests.fault.support import as_proto

    ministry, region = tiers.ministry, tiers.region
    _publish_at_ministry(tiers, MARRIAGE)
    _publish_at_ministry(tiers, HOUSEHOLD_CHECKS, share_type=ShareType.NOT_SHARED, open_type=OpenType.NOT_OPEN,
                         share_condition="涉及家庭经济状况，依《社会救助家庭经济状况核对办法》不予共享")
    # the ministry's catalog entries come down by themselves (the same uplink, to a lower_node platform)
    wait_until(lambda: _entry_at(region, MARRIAGE) is not None, 60, "the 婚姻登记 entry reached the region")
    assert _entry_at(region, MARRIAGE).origin_node == ministry.node_id
    wait_until(lambda: _entry_at(region, HOUSEHOLD_CHECKS) is not None, 60, "the 不予共享 entry reached the region")
    # the regional department files its demand at its own node, which forwards it through its uplink
    asking = lists_pb2_grpc.ListsServiceStub(region.channel_as(REGION_DEPT, ("consumer",)))
    refused = asking.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=HOUSEHOLD_CHECKS, purpose="回流", legal_basis="办法", contact="王芳")), timeout=30)
    assert refused.state == lists_pb2.REJECTED and "不予共享" in refused.reason and refused.decided_by == "rule:不予共享"
    filed = asking.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=MARRIAGE, purpose="婚姻状况核验（回流）", legal_basis="《婚姻登记条例》", contact="王芳")), timeout=30)
    assert filed.state == lists_pb2.UNDER_REVIEW and not filed.grant_id  # waiting for the ministry
    with pytest.raises(grpc.RpcError) as not_here:  # nobody at the region decides the ministry's resource
        lists_pb2_grpc.ListsServiceStub(region.channel_as(MINISTRY_DEPT, ("reviewer",))).DecideDemand(
            lists_pb2.DecideDemandRequest(id=filed.id, approve=True), timeout=30)
    assert not_here.value.code() == grpc.StatusCode.FAILED_PRECONDITION and ministry.node_id in not_here.value.details()
    reviewer = lists_pb2_grpc.ListsServiceStub(ministry.channel_as(MINISTRY_DEPT, ("reviewer",)))

    def at_ministry() -> lists_pb2.Demand | None:
        found = reviewer.ListDemands(lists_pb2.ListDemandsRequest(department_code=MINISTRY_DEPT), timeout=30).demands
        return next((d for d in found if d.resource_code == MARRIAGE and d.requester_code == REGION_DEPT), None)

    wait_until(lambda: at_ministry() is not None, 60, "the forwarded demand reached the ministry")
    forwarded = at_ministry()
    assert forwarded.state == lists_pb2.UNDER_REVIEW and forwarded.contact == "王芳"
    # the ministry's reviewer decides; a lower node registers no encryption key of its own: the grant says it
    # takes records in clear (audited)
    assert reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=forwarded.id, approve=True, clear_delivery=True),
                                 timeout=30).grant_id

    def answered() -> lists_pb2.Demand:
        return asking.GetDemand(lists_pb2.GetDemandRequest(id=filed.id), timeout=30)

    wait_until(lambda: answered().state == lists_pb2.APPROVED, 60, "the ministry's decision came down")
    assert answered().grant_id and answered().decided_by.startswith(f"node:{ministry.node_id}/")
    # subscriptions work the same at the lower node: the department subscribes its own platform there
    own = exchange_pb2_grpc.ExchangeServiceStub(region.channel_as(REGION_DEPT, ("consumer",)))
    own.Subscribe(pb.SubscribeRequest(resource_code=MARRIAGE, platform=REGION_PLATFORM), timeout=30)
    key = Key()
    admin = exchange_pb2_grpc.ExchangeServiceStub(ministry.channel_as(MINISTRY_DEPT, ("catalog_admin",)))
    key.kid = admin.RegisterKey(pb.RegisterKeyRequest(department_code=MINISTRY_DEPT, algorithm="Ed25519",
                                                      public_pem=key.pem), timeout=30).key_id
    records = [Record(f"HY-{n:06d}", n, Operation.UPSERT, {"公民身份号码": "360426199101010071", "姓名": f"李{n}",
                                                          "保障金额": 0, "纳入保障日期": "2025-06-01"})
               for n in range(1, 21)]
    provider = exchange_pb2_grpc.ExchangeServiceStub(ministry.channel_as(MINISTRY_DEPT, ("provider",)))
    assert provider.Ingest(as_proto(provider_batch(MINISTRY_DEPT, MARRIAGE, records, key)), timeout=30).accepted == 20

    def at_region() -> set[str]:
        engine = make_engine(region.config.database_url)
        try:
            with engine.connect() as connection:
                return set(connection.execute(select(relayed_records.c.record_id).where(
                    relayed_records.c.resource_code == MARRIAGE, relayed_records.c.sender_node == ministry.node_id))
                    .scalars())
        finally:
            engine.dispose()

    wanted = {r.id for r in records}
    wait_until(lambda: wanted <= at_region(), 90, lambda: f"{len(wanted & at_region())}/20 records at the region")
    chain = verify_chain(region)  # every hop's signature, the ministry's over what came down included
    assert chain["problems"] == [] and chain["records"] == chain["verified"]
    assert dead_letters(tiers.vhosts["region"], region) == 0
    # at the region the records are pulled like any other: the regional platform pulls the node's records
    stub = exchange_pb2_grpc.ExchangeServiceStub(region.channel_as(REGION_DEPT, ("platform",)))
    public = KeyStore.load(region.data / "keys").public
    outcome = pull(lambda requests: stub.Pull(requests, timeout=120), TrustedNode(region.node_id, public),
                   tmp_path / "region-pull")
    pulled = [json.loads(line) for f in sorted(outcome.directory.glob("batch-*.jsonl"))
              for line in f.read_bytes().splitlines() if line]
    returned = [r for r in pulled if r["resource"] == MARRIAGE]
    assert {r["id"] for r in returned} == wanted
    assert {r["payload"]["公民身份号码"] for r in returned} == {"360426********0071"}  # masked at the ministry
    # and relayed to the department's platform, each record with the ministry's signature as an earlier hop
    from adapters.codecs import regional
    from adapters.codecs.envelope import verify_chain as envelope_chain

    url = f"amqp://guest:guest@127.0.0.1:5672/{tiers.vhosts['region']}"
    trusted = {region.node_id: public, ministry.node_id: KeyStore.load(ministry.data / "keys").public}
    delivered: dict[str, object] = {}
    deadline = time.monotonic() + 60
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while len(delivered) < len(wanted) and time.monotonic() < deadline:
            method, _, body = channel.basic_get(f"exnode.{region.node_id}.out.{REGION_PLATFORM}", auto_ack=True)
            if method is None:
                time.sleep(0.2)
                continue
            envelope = regional.decode(body)
            assert envelope_chain(envelope, trusted) == [] and [h.node_id for h in envelope.hops] == [ministry.node_id]
            delivered[envelope.records[0].id] = envelope
    assert set(delivered) == wanted
    # the region's uplink never sends the ministry's own entries back up (the ministry would refuse a loop)
    assert dead_letters(tiers.vhosts["ministry"], ministry) == 0


def test_monthly_reports_go_up_and_the_ministry_aggregates_the_region(tiers: Tiers, tmp_path: Path):
    from lxml import etree

    from node.files.report import report_schema

    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")

    def report(node: ServedNode, dept: str, *args: str) -> subprocess.CompletedProcess:
        return exnode("report", *args, "--month", month, "--server", node.address, "--token",
                      node.token(dept, ("consumer",)), "--json")

    sent = report(tiers.department, PROVIDER, "send")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["queues"] == [f"exnode.{tiers.department.node_id}.out.region"]

    def includes(node: ServedNode, dept: str, out: Path) -> list[str]:
        written = report(node, dept, "monthly", "--region", "--out", str(out))
        assert written.returncode == 0, written.stderr
        [xml] = out.glob("*.xml")
        root = etree.fromstring(xml.read_bytes())
        report_schema().assertValid(root)
        return [e.get("node") for e in root.findall("{urn:exnode:report:v1}includes")]

    wait_until(lambda: includes(tiers.region, REGION_DEPT, tmp_path / f"r{time.monotonic_ns()}")
               == [tiers.department.node_id], 60, "the department's report reached the region")
    up = report(tiers.region, REGION_DEPT, "send")
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["includes"] == [tiers.department.node_id]  # the region sends its aggregate
    wait_until(lambda: includes(tiers.ministry, MINISTRY_DEPT, tmp_path / f"m{time.monotonic_ns()}")
               == [tiers.region.node_id], 60, "the region's report reached the ministry")
    out = tmp_path / "ministry-final"
    includes(tiers.ministry, MINISTRY_DEPT, out)
    [resources] = out.glob("*-资源.csv")
    text = resources.read_bytes().decode("utf-8-sig")
    assert LOW_INCOME in text  # the department's resource, counted at the department and the region
    bad = report(tiers.ministry, MINISTRY_DEPT, "send")
    assert bad.returncode == 1 and "no upper node" in bad.stderr  # the top has nobody to report to
    assert dead_letters(tiers.vhosts["region"], tiers.region) == 0
    assert dead_letters(tiers.vhosts["ministry"], tiers.ministry) == 0


def _tier_disputed(node: ServedNode, record_id: str) -> bool | None:
    """The mark a lower node's dispute notice set at ``node`` (None: no notice reached it)."""
    from node.storage.tables import tier_disputes

    engine = make_engine(node.config.database_url)
    try:
        with engine.connect() as connection:
            marks = list(connection.execute(select(tier_disputes.c.disputed).where(
                tier_disputes.c.record_id == record_id)).scalars())
    finally:
        engine.dispose()
    return any(marks) if marks else None


def test_an_objection_at_the_department_marks_the_record_at_the_region_and_the_ministry_until_answered(
        tiers: Tiers, tmp_path: Path):
    """校核纠错 across tiers: the department's signed notice goes up the shovel; the region applies it, serves the
    record disputed in its pulls and passes a notice of its own to the ministry; the answer clears both."""
    from node.clients.pull import TrustedNode, pull

    provider = tiers.ingest(batches=1, tag="o").start()
    provider.join(120)
    sent = provider.acknowledged_ids()
    wait_until(lambda: arrived_everywhere(tiers, sent), 90, "the records reached the ministry")
    record_id = sorted(sent)[0]
    consumer = lists_pb2_grpc.ListsServiceStub(tiers.department.channel_as(REGION_DEPT, ("consumer",)))
    raised: list[lists_pb2.Objection] = []

    def raise_it() -> bool:  # the region's delivery is recorded once the department's broker confirmed it
        try:
            raised.append(consumer.RaiseObjection(lists_pb2.RaiseObjectionRequest(
                resource_code=LOW_INCOME, record_id=record_id, evidence="自治区民政厅台账：保障金额有误"), timeout=30))
            return True
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
            return False

    wait_until(raise_it, 60, "the objection was taken")
    wait_until(lambda: _tier_disputed(tiers.region, record_id) is True, 60, "the mark reached the region")
    wait_until(lambda: _tier_disputed(tiers.ministry, record_id) is True, 60, "the mark reached the ministry")
    # at the region the record is served disputed: the ministry's platform pulls it marked
    stub = exchange_pb2_grpc.ExchangeServiceStub(tiers.region.channel_as(MINISTRY_DEPT, ("platform",)))
    public = KeyStore.load(tiers.region.data / "keys").public
    outcome = pull(lambda requests: stub.Pull(requests, timeout=120), TrustedNode(tiers.region.node_id, public),
                   tmp_path / "region-pull")
    manifest = json.loads((outcome.directory / "manifest.json").read_text(encoding="utf-8"))
    disputed = []
    for batch in manifest["batches"]:
        lines = (outcome.directory / batch["file"]).read_bytes().split(b"\n")
        disputed.extend(json.loads(lines[i])["id"] for i in batch.get("disputed", []))
    assert disputed == [record_id]
    # the provider confirms the record: the mark clears at every tier
    reviewer = lists_pb2_grpc.ListsServiceStub(tiers.department.channel_as(PROVIDER, ("reviewer",)))
    reviewer.AnswerObjection(lists_pb2.AnswerObjectionRequest(id=raised[0].id, reason="经核对台账无误"), timeout=30)
    wait_until(lambda: _tier_disputed(tiers.region, record_id) is False, 60, "the answer reached the region")
    wait_until(lambda: _tier_disputed(tiers.ministry, record_id) is False, 60, "the answer reached the ministry")
    assert dead_letters(tiers.vhosts["region"], tiers.region) == 0
    assert dead_letters(tiers.vhosts["ministry"], tiers.ministry) == 0


OTHER_RESOURCE = "311140003/000011"  # a resource of the other region's department


def test_a_region_gets_a_resource_of_another_region_through_the_ministry(tiers: Tiers):
    """回流 between regions: the other region's entry goes up and comes down to the region through the ministry;
    the region's demand follows that route up, the ministry's reviewer decides, the records come down from the
    other region through the ministry, every hop's signature verified at the region."""
    from node.grpc.convert import metadata_to_proto
    from node.pipeline import provider_batch
    from tests.conftest import resource
    from tests.fault.support import as_proto

    other, region, ministry = tiers.other, tiers.region, tiers.ministry
    assert other is not None
    admin = catalog_pb2_grpc.CatalogServiceStub(other.channel_as(OTHER_DEPT, ("catalog_admin",)))
    meta = resource(OTHER_RESOURCE, name="特困人员供养信息", provider_code=OTHER_DEPT, provider_name="自治区民政厅")
    admin.CreateResource(catalog_pb2.CreateResourceRequest(metadata=metadata_to_proto(meta)), timeout=30)
    admin.PublishResource(catalog_pb2.PublishResourceRequest(code=OTHER_RESOURCE), timeout=30)
    wait_until(lambda: _entry_at(region, OTHER_RESOURCE) is not None, 90, "the other region's entry reached the region")
    assert _entry_at(region, OTHER_RESOURCE).origin_node == other.node_id
    asking = lists_pb2_grpc.ListsServiceStub(region.channel_as(REGION_DEPT, ("consumer",)))
    filed = asking.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=OTHER_RESOURCE, purpose="跨区域特困供养核验", legal_basis="《特困人员认定办法》", contact="王芳")),
        timeout=30)
    assert filed.state == lists_pb2.UNDER_REVIEW and not filed.grant_id  # forwarded to the ministry
    reviewer = lists_pb2_grpc.ListsServiceStub(ministry.channel_as(OTHER_DEPT, ("reviewer",)))

    def at_ministry() -> lists_pb2.Demand | None:
        found = reviewer.ListDemands(lists_pb2.ListDemandsRequest(department_code=OTHER_DEPT), timeout=30).demands
        return next((d for d in found if d.resource_code == OTHER_RESOURCE and d.requester_code == REGION_DEPT), None)

    wait_until(lambda: at_ministry() is not None, 60, "the forwarded demand reached the ministry")
    reviewer.DecideDemand(lists_pb2.DecideDemandRequest(id=at_ministry().id, approve=True, clear_delivery=True),
                          timeout=30)
    wait_until(lambda: asking.GetDemand(lists_pb2.GetDemandRequest(id=filed.id), timeout=30).state
               == lists_pb2.APPROVED, 60, "the ministry's decision came down")
    # the other region sends its records up to the ministry (the ministry's own grant there)
    lists = lists_pb2_grpc.ListsServiceStub(other.channel_as(MINISTRY_DEPT, ("consumer",)))
    demand = lists.FileDemand(lists_pb2.FileDemandRequest(demand=lists_pb2.Demand(
        resource_code=OTHER_RESOURCE, purpose="逐级汇交", legal_basis="办法", contact="王芳")), timeout=30)
    lists_pb2_grpc.ListsServiceStub(other.channel_as(OTHER_DEPT, ("reviewer",))).DecideDemand(
        lists_pb2.DecideDemandRequest(id=demand.id, approve=True, clear_delivery=True), timeout=30)
    exchange_pb2_grpc.ExchangeServiceStub(other.channel_as(MINISTRY_DEPT, ("consumer",))).Subscribe(
        pb.SubscribeRequest(resource_code=OTHER_RESOURCE, platform="ministry"), timeout=30)
    key = Key()
    key.kid = exchange_pb2_grpc.ExchangeServiceStub(other.channel_as(OTHER_DEPT, ("catalog_admin",))).RegisterKey(
        pb.RegisterKeyRequest(department_code=OTHER_DEPT, algorithm="Ed25519", public_pem=key.pem), timeout=30).key_id
    rows = [Record(f"TK-{n:06d}", n, Operation.UPSERT, {"公民身份号码": "360426199101010071", "姓名": f"赵{n}",
                                                       "保障金额": 500, "纳入保障日期": "2025-06-01"})
            for n in range(1, 11)]
    provider = exchange_pb2_grpc.ExchangeServiceStub(other.channel_as(OTHER_DEPT, ("provider",)))
    assert provider.Ingest(as_proto(provider_batch(OTHER_DEPT, OTHER_RESOURCE, rows, key)), timeout=30).accepted == 10

    def at_region() -> dict[str, int]:
        engine = make_engine(region.config.database_url)
        try:
            with engine.connect() as connection:
                return {row.record_id: len(json.loads(row.hops)) for row in connection.execute(select(
                    relayed_records.c.record_id, relayed_records.c.hops).where(
                    relayed_records.c.resource_code == OTHER_RESOURCE, relayed_records.c.sender_node == ministry.node_id))}
        finally:
            engine.dispose()

    wanted = {r.id for r in rows}
    wait_until(lambda: wanted <= set(at_region()), 90, lambda: f"{len(wanted & set(at_region()))}/10 at the region")
    assert set(at_region().values()) == {2}, "each record carries the other region's and the ministry's signature"
    chain = verify_chain(region)
    assert chain["problems"] == [] and chain["records"] == chain["verified"]
    assert dead_letters(tiers.vhosts["region"], region) == 0
    assert dead_letters(tiers.vhosts["ministry"], ministry) == 0
