"""The ingest rules on an in-memory unit of work (tests/unit/fakes.py): order, gaps, duplicates, replayed
batch ids and the same id with other content — what gRPC ingest, the inbound queue and the tiers all
rely on, in milliseconds. The same rules run against both databases in tests/integration."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from adapters.platforms import Platform
from catalog.errors import AlreadyExists, InvalidField
from catalog.lists import Grant
from catalog.model import Resource, ResourceStatus, ResourceVersion, VersionState
from catalog.records import Operation, Record
from node.pipeline import Ingest, provider_batch, rules
from node.services.audit import AuditSettings, AuditWriter
from node.storage.exchange_repository import ProviderKey, Subscription
from security.identity import Principal
from security.keys import SigningKey, parse_public_key
from security.policy import PermissionDenied, Policy
from tests.conftest import OTHER_PROVIDER, PROVIDER, resource
from tests.unit.fakes import FakeStore

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CODE = "311140001/000101"
CONSUMER = OTHER_PROVIDER


class ProviderSigner:
    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        self.pem = self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.kid = parse_public_key("Ed25519", self.pem).kid

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def record(n: int, name: str = "张三", sequence: int | None = None) -> Record:
    return Record(f"R-{n}", n if sequence is None else sequence, Operation.UPSERT,
                  {"公民身份号码": "110101199003070016", "姓名": name, "纳入保障日期": "2025-06-01"})


@pytest.fixture
def world():
    store = FakeStore()
    meta = resource(CODE)
    store.state.resources[CODE] = Resource(CODE, ResourceStatus.PUBLISHED,
                                           ResourceVersion(meta, 1, VersionState.PUBLISHED, NOW, NOW), 1, None)
    signer = ProviderSigner()
    store.state.keys[signer.kid] = ProviderKey(signer.kid, PROVIDER, "Ed25519", signer.pem, NOW)
    node_key = SigningKey("node-k1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    writer = AuditWriter(store, node_key, AuditSettings(node_id="n1"), lambda: NOW)
    platform = Platform("hhht", "regional", CONSUMER, "exnode.n1.out.hhht")
    ingest = Ingest(store, lambda: NOW, Policy(), node_key, "n1", [platform], writer)
    provider = Principal("p", PROVIDER, frozenset({"provider"}))
    return store, ingest, signer, provider


def send(world, records, batch_id):
    store, ingest, signer, provider = world
    return ingest.ingest(provider, provider_batch(PROVIDER, CODE, records, signer, batch_id=batch_id))


def test_a_fresh_batch_stores_its_records_batch_delivery_and_audit_entry_in_one_commit(world):
    store = world[0]
    result = send(world, [record(1), record(2), record(3)], "b1")
    assert (result.accepted, result.duplicates, result.gaps, result.subscribers) == (3, 0, (), 0)
    state = store.state
    assert len(state.records) == 3 and state.batches["b1"].record_count == 3 and state.commits == 1
    assert state.deliveries == [(PROVIDER, CODE, "", "b1", 3)]
    assert [e.record.action for e in state.audit] == ["exchange/store-batch"]
    assert "3 records stored, 0 duplicates" in state.audit[0].record.detail


def test_a_replayed_batch_id_is_refused_and_changes_nothing(world):
    store = world[0]
    send(world, [record(1)], "b1")
    before = (dict(store.state.records), len(store.state.audit), store.state.commits)
    with pytest.raises(AlreadyExists, match="b1"):
        send(world, [record(2)], "b1")
    assert (dict(store.state.records), len(store.state.audit), store.state.commits) == before


def test_the_same_records_again_under_a_new_batch_id_are_duplicates_that_change_nothing(world):
    store = world[0]
    send(world, [record(1), record(2)], "b1")
    again = send(world, [record(1), record(2)], "b2")
    assert (again.accepted, again.duplicates) == (0, 2)
    assert len(store.state.records) == 2 and store.state.batches["b2"].record_count == 0
    assert len(store.state.deliveries) == 1  # no delivery for nothing new


def test_the_same_id_with_other_content_is_refused_naming_the_record_and_changes_nothing(world):
    store = world[0]
    send(world, [record(1), record(2)], "b1")
    commits = store.state.commits
    with pytest.raises(InvalidField) as refused:
        send(world, [record(3), record(2, name="李四")], "b2")
    assert [(p.field, p.reason) for p in refused.value.problems] == [
        ("records[1].id", "R-2 was already received with other content")]
    assert store.state.commits == commits and "b2" not in store.state.batches and len(store.state.records) == 2


def test_sequences_must_rise_and_gaps_are_stored_and_reported(world):
    store = world[0]
    assert send(world, [record(1), record(2)], "b1").gaps == ()
    gapped = send(world, [record(5), record(9)], "b2")
    assert gapped.gaps == ("3-4", "6-8") and store.state.batches["b2"].gaps == ["3-4", "6-8"]
    with pytest.raises(InvalidField) as backwards:
        send(world, [record(10, sequence=7)], "b3")
    assert backwards.value.problems[0].field == "records[0].sequence"
    assert "7 is not after the last stored sequence 9" in backwards.value.problems[0].reason
    assert "b3" not in store.state.batches


def test_a_record_twice_in_one_batch_counts_once_and_twice_with_other_content_is_refused(world):
    result = send(world, [record(1), record(1)], "b1")
    assert (result.accepted, result.duplicates) == (1, 1)
    with pytest.raises(InvalidField, match="already received with other content"):
        send(world, [record(2), record(2, name="王五")], "b2")


def test_a_subscriber_with_a_live_grant_gets_an_outbox_row_and_an_expired_grant_none(world):
    store, _, _, _ = world
    store.state.subscriptions.append(Subscription(CONSUMER, CODE, "hhht", "SQ-1"))
    store.state.grants.append(Grant("SQ-1", CONSUMER, PROVIDER, CODE, ("姓名", "公民身份号码"),
                                    NOW + dt.timedelta(days=30), {"公民身份号码": "keep:6,4"}, clear_delivery=True))
    assert send(world, [record(1)], "b1").subscribers == 1
    [row] = store.state.outbox
    assert row["queue"] == "exnode.n1.out.hhht" and row["headers"]["x-exnode-record-count"] == "1"
    store.state.grants[0] = Grant("SQ-1", CONSUMER, PROVIDER, CODE, ("姓名",), NOW - dt.timedelta(days=1))
    assert send(world, [record(2)], "b2").subscribers == 0 and len(store.state.outbox) == 1


def test_a_consumer_with_no_encryption_key_gets_nothing_unless_its_grant_allows_clear_delivery(world):
    store, _, _, _ = world
    store.state.subscriptions.append(Subscription(CONSUMER, CODE, "hhht", "SQ-1"))
    store.state.grants.append(Grant("SQ-1", CONSUMER, PROVIDER, CODE, ("姓名", "公民身份号码"),
                                    NOW + dt.timedelta(days=30), {"公民身份号码": "keep:6,4"}))
    assert send(world, [record(1)], "b1").subscribers == 0 and store.state.outbox == []


def test_records_for_a_resource_of_another_provider_are_refused_by_the_policy(world):
    store, ingest, signer, _ = world
    other = Principal("o", OTHER_PROVIDER, frozenset({"provider"}))
    store.state.keys[signer.kid] = ProviderKey(signer.kid, OTHER_PROVIDER, "Ed25519", signer.pem, NOW)
    with pytest.raises(PermissionDenied, match="is not responsible for 311140001/000101"):
        ingest.ingest(other, provider_batch(OTHER_PROVIDER, CODE, [record(1)], signer, batch_id="x"))
    assert not store.state.records


def test_sort_fresh_splits_new_duplicate_and_conflicting_records():
    records = [record(1), record(2), record(3, name="新")]
    hashes = [hashlib.sha256(r.id.encode() + r.payload["姓名"].encode()).digest() for r in records]
    stored = {"R-2": hashes[1].hex(), "R-3": "00" * 32}
    found = rules.sort_fresh(records, hashes, stored)
    assert [r.id for r, _ in found.fresh] == ["R-1"] and found.duplicates == 2
    assert [(i, r.id) for i, r in found.conflicts] == [(2, "R-3")]
