"""The audit trail's hash chain and signed checkpoints (security/audit.py), without storage.

Every tampering an operator with database or file access could try is applied to an in-memory trail, and
``verify`` must stop at the entry concerned and say what happened there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from security.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    Checkpoint,
    ExportFileError,
    VerifyResult,
    chain,
    entry_hash,
    export_header,
    read_export,
    sign_checkpoint,
    verify,
)
from security.keys import KeyStore, PublicKey, SigningKey, key_id

NODE = "node-mca-01"
T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def record(n: int, **changes: object) -> AuditRecord:
    fields: dict[str, object] = dict(
        at=T0 + dt.timedelta(seconds=n), request_id=f"req-{n:04d}", subject=f"user-{n % 3}",
        department_code="11100000MB01284764", roles=("catalog_admin",), action="CatalogService/GetResource",
        target="resource:311140001/000101", result="OK", peer="ipv4:127.0.0.1:5000", detail=f"第{n}次查询")
    fields.update(changes)
    return AuditRecord(**fields)  # type: ignore[arg-type]


@dataclasses.dataclass
class Trail:
    entries: list[AuditEntry]
    checkpoints: list[Checkpoint]
    store: KeyStore

    def verify(self, **overrides: object) -> VerifyResult:
        arguments: dict[str, object] = {"keys": self.store.public, "node_id": NODE, **overrides}
        return verify(self.entries, self.checkpoints, **arguments)  # type: ignore[arg-type]

    def entry(self, sequence: int) -> AuditEntry:
        return next(e for e in self.entries if e.sequence == sequence)

    def index(self, sequence: int) -> int:
        return next(i for i, e in enumerate(self.entries) if e.sequence == sequence)


def build(store: KeyStore, count: int = 10, every: int = 5) -> Trail:
    """``count`` entries with a checkpoint every ``every`` entries."""
    entries = chain([record(n) for n in range(1, count + 1)], 0, GENESIS)
    checkpoints = [sign_checkpoint(store.active, NODE, e.sequence, e.entry_hash, e.record.at)
                   for e in entries if e.sequence % every == 0]
    return Trail(entries, checkpoints, store)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return KeyStore.create(tmp_path_factory.mktemp("audit") / "keys")


@pytest.fixture
def trail(store: KeyStore) -> Trail:
    return build(store)


def assert_broken(result: VerifyResult, sequence: int, *words: str) -> None:
    assert not result.ok, "the tampering went unnoticed"
    assert result.first_broken_sequence == sequence, result.problem
    for word in words:
        assert word in result.problem, (word, result.problem)


# -- the untouched trail ------------------------------------------------------------------------------

def test_a_clean_trail_verifies_and_counts_what_it_checked(trail: Trail):
    result = trail.verify()
    assert result.ok and result.problem == "" and result.first_broken_sequence == 0
    assert (result.entries_checked, result.checkpoints_checked, result.unsigned_tail) == (10, 2, 0)
    assert (result.first_sequence, result.last_sequence) == (1, 10)


def test_entries_after_the_last_checkpoint_are_reported_as_the_unsigned_tail(store: KeyStore):
    result = build(store, count=13).verify()
    assert result.ok
    assert (result.entries_checked, result.checkpoints_checked, result.unsigned_tail) == (13, 2, 3)


def test_chain_continues_from_a_given_head(store: KeyStore):
    first = chain([record(1), record(2)], 0, GENESIS)
    more = chain([record(3)], 2, first[-1].entry_hash)
    assert more[0].sequence == 3 and more[0].previous_hash == first[-1].entry_hash
    assert chain([record(1), record(2), record(3)], 0, GENESIS) == first + more


def test_an_empty_trail_without_checkpoints_verifies(store: KeyStore):
    result = verify([], [], keys=store.public, node_id=NODE)
    assert result.ok and result.entries_checked == 0


# -- tampering with entries ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("detail", "第3次查询（已删改）"), ("subject", "someone-else"), ("result", "PERMISSION_DENIED"),
    ("roles", ("catalog_admin", "security_officer")), ("at", T0 + dt.timedelta(days=1)),
])
def test_an_edited_field_breaks_the_content_hash_of_that_entry(trail: Trail, field: str, value: object):
    index = trail.index(3)
    original = trail.entries[index]
    trail.entries[index] = dataclasses.replace(original, record=dataclasses.replace(original.record,
                                                                                     **{field: value}))
    assert_broken(trail.verify(), 3, "entry 3 was altered", "does not match its hash")


def test_a_deleted_middle_entry_is_named_as_missing(trail: Trail):
    del trail.entries[trail.index(4)]
    assert_broken(trail.verify(), 4, "entry 4 is missing", "after entry 3 comes 5", "deleted")


def test_deleted_tail_entries_covered_by_a_checkpoint_are_detected(trail: Trail):
    del trail.entries[trail.index(9):]
    assert_broken(trail.verify(), 9, "checkpoint 10 signs entries up to 10", "ends at 8", "deleted from the end")


def test_all_entries_deleted_while_checkpoints_remain_is_detected(trail: Trail):
    trail.entries.clear()
    assert_broken(trail.verify(), 10, "the trail is empty", "checkpoint 10")


def test_two_swapped_entries_renumbered_in_place_break_the_link(trail: Trail):
    """What swapping two rows' contents in the database looks like: sequence numbers in order, the
    entries (with their hashes) exchanged."""
    third, fourth = trail.entry(3), trail.entry(4)
    trail.entries[trail.index(3)] = dataclasses.replace(fourth, sequence=3)
    trail.entries[trail.index(4)] = dataclasses.replace(third, sequence=4)
    assert_broken(trail.verify(), 3, "entry 3 does not link to entry 2", "reordered")


def test_two_swapped_lines_of_a_file_are_caught_at_the_first_out_of_place_entry(trail: Trail):
    """Lines exchanged in a file: verification streams, so it meets entry 4 where 3 belongs and stops there."""
    i, j = trail.index(3), trail.index(4)
    trail.entries[i], trail.entries[j] = trail.entries[j], trail.entries[i]
    assert_broken(trail.verify(), 3, "entry 3 is missing", "after entry 2 comes 4")


def test_an_entry_replayed_later_is_reported_as_reordered_or_duplicated(trail: Trail):
    trail.entries.append(trail.entry(4))
    assert_broken(trail.verify(), 4, "entry 4 comes after entry 10", "reordered or duplicated")


def test_an_inserted_entry_with_the_following_ones_renumbered_breaks_at_the_next_genuine_entry(trail: Trail):
    """The forger chains the new entry correctly onto entry 5 but cannot recompute the rest without being
    caught by the checkpoint, so the first genuine entry after it no longer links."""
    forged = chain([record(99, detail="伪造的记录")], 5, trail.entry(5).entry_hash)[0]
    renumbered = [dataclasses.replace(e, sequence=e.sequence + 1) for e in trail.entries[trail.index(6):]]
    trail.entries[trail.index(6):] = [forged, *renumbered]
    assert forged.sequence == 6
    assert_broken(trail.verify(), 7, "entry 7 does not link to entry 6", "inserted")


def test_an_inserted_entry_with_a_made_up_hash_is_named(trail: Trail):
    forged = AuditEntry(6, record(99), trail.entry(5).entry_hash, hashlib.sha256(b"made up").digest())
    trail.entries.insert(trail.index(6), forged)
    assert_broken(trail.verify(), 6, "entry 6 was altered")


def test_an_inserted_duplicate_of_a_sequence_number_is_named(trail: Trail):
    forged = chain([record(99)], 5, trail.entry(5).entry_hash)[0]
    trail.entries.insert(trail.index(6), forged)
    assert_broken(trail.verify(), 6, "entry 6 comes after entry 6", "duplicated")


def test_an_entry_appended_with_a_wrong_previous_hash_does_not_link(trail: Trail):
    forged = AuditEntry(11, record(11), hashlib.sha256(b"elsewhere").digest(), bytes(32))
    forged = dataclasses.replace(forged, entry_hash=entry_hash(forged.previous_hash, 11, forged.record))
    trail.entries.append(forged)
    assert_broken(trail.verify(), 11, "entry 11 does not link to entry 10")


@pytest.mark.parametrize("edited, signed_from, signed_to", [(3, 1, 5), (7, 6, 10)])
def test_a_consistently_rewritten_chain_is_caught_by_the_next_checkpoint(
        trail: Trail, edited: int, signed_from: int, signed_to: int):
    """The attacker edits an entry and recomputes every hash after it: each link is right, but the chain
    no longer reaches the hash the node signed. Only the signed span can be named, not the edited entry."""
    index = trail.index(edited)
    records = [e.record for e in trail.entries[index:]]
    records[0] = dataclasses.replace(records[0], result="PERMISSION_DENIED", detail="改写")
    previous = trail.entries[index - 1]
    trail.entries[index:] = chain(records, previous.sequence, previous.entry_hash)
    result = trail.verify()
    assert_broken(result, signed_from, f"entries {signed_from}..{signed_to} were rewritten",
                  f"checkpoint {signed_to}")


# -- tampering with checkpoints -----------------------------------------------------------------------

def test_a_forged_checkpoint_signature_is_refused(trail: Trail):
    checkpoint = trail.checkpoints[0]
    signature = bytes([checkpoint.signature[0] ^ 0x01]) + checkpoint.signature[1:]
    trail.checkpoints[0] = dataclasses.replace(checkpoint, signature=signature)
    assert_broken(trail.verify(), 5, "checkpoint 5", "signature does not verify", checkpoint.kid)


def test_a_checkpoint_moved_to_another_hash_no_longer_verifies(trail: Trail):
    """A rewrite cannot carry the old signature over to the new head hash."""
    checkpoint = trail.checkpoints[1]
    trail.checkpoints[1] = dataclasses.replace(checkpoint, entry_hash=hashlib.sha256(b"rewritten").digest())
    assert_broken(trail.verify(), 10, "checkpoint 10", "signature does not verify")


def test_a_checkpoint_signed_by_an_unknown_key_is_refused(trail: Trail, tmp_path: Path):
    stranger = KeyStore.create(tmp_path / "stranger")
    head = trail.entry(10)
    trail.checkpoints[1] = sign_checkpoint(stranger.active, NODE, 10, head.entry_hash, head.record.at)
    assert_broken(trail.verify(), 10, "checkpoint 10", stranger.active.kid, "not a node key")


def test_a_stranger_key_reusing_a_node_kid_is_refused(trail: Trail):
    impostor = SigningKey(trail.store.active.kid, "Ed25519", ed25519.Ed25519PrivateKey.generate())
    head = trail.entry(10)
    trail.checkpoints[1] = sign_checkpoint(impostor, NODE, 10, head.entry_hash, head.record.at)
    assert_broken(trail.verify(), 10, "checkpoint 10", "signature does not verify")


def test_a_checkpoint_signed_for_another_node_is_refused(trail: Trail):
    head = trail.entry(5)
    trail.checkpoints[0] = sign_checkpoint(trail.store.active, "node-elsewhere", 5, head.entry_hash, head.record.at)
    assert_broken(trail.verify(), 5, "checkpoint 5", "'node-elsewhere'", repr(NODE))


def test_the_whole_trail_is_refused_when_verified_as_another_node(trail: Trail):
    assert_broken(trail.verify(node_id="node-elsewhere"), 5, "checkpoint 5", "not 'node-elsewhere'")


def test_checkpoints_signed_before_a_key_rotation_still_verify(tmp_path: Path):
    before = KeyStore.create(tmp_path / "keys")
    trail = build(before)
    after = before.rotate()
    head = chain([record(11)], 10, trail.entry(10).entry_hash)[0]
    trail.entries.append(head)
    trail.checkpoints.append(sign_checkpoint(after.active, NODE, 11, head.entry_hash, head.record.at))
    assert after.active.kid != before.active.kid
    result = verify(trail.entries, trail.checkpoints, keys=after.public, node_id=NODE)
    assert result.ok and result.checkpoints_checked == 3
    assert not verify(trail.entries, trail.checkpoints, keys=before.public, node_id=NODE).ok


# -- retention ----------------------------------------------------------------------------------------

def test_a_purged_trail_hangs_from_its_anchor_checkpoint(trail: Trail):
    del trail.entries[:trail.index(6)]
    trail.checkpoints = [c for c in trail.checkpoints if c.sequence >= 5]
    result = trail.verify()
    assert result.ok, result.problem
    assert (result.first_sequence, result.last_sequence, result.entries_checked) == (6, 10, 5)
    assert result.checkpoints_checked == 2 and result.unsigned_tail == 0


def test_a_purged_trail_without_its_anchor_is_refused(trail: Trail):
    del trail.entries[:trail.index(6)]
    trail.checkpoints = [c for c in trail.checkpoints if c.sequence > 5]
    assert_broken(trail.verify(), 6, "starts at entry 6", "no signed checkpoint anchors it", "deleted")


def test_entries_deleted_from_the_start_beyond_a_checkpoint_are_refused(trail: Trail):
    del trail.entries[:trail.index(7)]  # the anchor at 5 remains, but entry 6 is gone too
    assert_broken(trail.verify(), 7, "starts at entry 7", "no signed checkpoint anchors it")


def test_an_anchor_with_a_forged_hash_does_not_verify(trail: Trail):
    del trail.entries[:trail.index(6)]
    anchor = trail.checkpoints[0]
    trail.checkpoints[0] = dataclasses.replace(anchor, entry_hash=trail.entry(6).previous_hash[::-1])
    assert_broken(trail.verify(), 5, "checkpoint 5", "signature does not verify")


# -- known answers ------------------------------------------------------------------------------------

KAT_RECORD = AuditRecord(
    at=dt.datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    request_id="req-0001", subject="张三", department_code="11100000MB01284764",
    roles=("security_officer", "catalog_admin"), action="CatalogService/GetResource",
    target="resource:311140001/000101", result="OK", peer="ipv4:10.0.0.7:50312",
    detail="查询城乡最低生活保障对象信息；“引号”与\\反斜杠")

# Computed once with this implementation and pasted in. It pins the canonical encoding (domain tag, UTC
# time spelling, sorted keys, sorted roles, compact separators, raw UTF-8 rather than \\u escapes):
# any change to it would make every stored trail and every export unverifiable, so it must fail here.
KAT_ENTRY_HASH = "cf03189f3a235fb2569a4e6149a460444df13e0f91a90d5c2beb0146040d15a8"
KAT_CANONICAL = (
    '{"action":"CatalogService/GetResource","at":"2026-11-23T00:30:15.123456Z",'
    '"department_code":"11100000MB01284764","detail":"查询城乡最低生活保障对象信息；“引号”与\\\\反斜杠",'
    '"peer":"ipv4:10.0.0.7:50312","request_id":"req-0001","result":"OK",'
    '"roles":["catalog_admin","security_officer"],"sequence":1,"subject":"张三",'
    '"target":"resource:311140001/000101"}')


def test_entry_hash_known_answer_pins_the_canonical_encoding():
    assert entry_hash(GENESIS, 1, KAT_RECORD).hex() == KAT_ENTRY_HASH
    spelled_out = b"exnode-audit-entry/1\n" + bytes(32) + KAT_CANONICAL.encode("utf-8")
    assert hashlib.sha256(spelled_out).hexdigest() == KAT_ENTRY_HASH


def test_entry_hash_does_not_depend_on_the_time_zone_or_role_order():
    same = dataclasses.replace(KAT_RECORD, at=KAT_RECORD.at.astimezone(dt.UTC),
                               roles=("catalog_admin", "security_officer"))
    assert entry_hash(GENESIS, 1, same).hex() == KAT_ENTRY_HASH
    assert entry_hash(GENESIS, 2, KAT_RECORD).hex() != KAT_ENTRY_HASH
    assert entry_hash(bytes([1]) + bytes(31), 1, KAT_RECORD).hex() != KAT_ENTRY_HASH


def test_audit_times_must_be_timezone_aware():
    naive = dataclasses.replace(KAT_RECORD, at=dt.datetime(2026, 11, 23, 8, 30))
    with pytest.raises(ValueError, match="timezone-aware"):
        entry_hash(GENESIS, 1, naive)


# RFC 8032 §7.1, TEST 1: the secret key, its public key, and the signature of the empty message.
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIGNATURE = ("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
# Ed25519 is deterministic, so a checkpoint signed with the RFC key is a known answer too (computed once
# and pasted in): it pins the checkpoint message the node signs.
KAT_CHECKPOINT_SIGNATURE = ("c874a6c904a58e852d950ca9450ed0c8511d1378a8ae4a4e69754ecd7ba578dc"
                            "be721a88442d1b66437d39d8202aff7d3e1371c3dff2264d1a4e29ede9d57e06")


def rfc8032_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SECRET))


def rfc8032_public_key() -> PublicKey:
    spki = rfc8032_key().public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = rfc8032_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return PublicKey(key_id(spki), "Ed25519", pem, "")


def test_ed25519_matches_rfc_8032_test_1():
    key = rfc8032_key()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert public.hex() == RFC8032_PUBLIC
    assert key.sign(b"").hex() == RFC8032_SIGNATURE
    key.public_key().verify(bytes.fromhex(RFC8032_SIGNATURE), b"")


def test_the_node_public_key_type_verifies_the_rfc_8032_signature():
    published = rfc8032_public_key()
    signature = bytes.fromhex(RFC8032_SIGNATURE)
    assert published.verify(b"", signature)
    assert not published.verify(b"x", signature)
    assert not published.verify(b"", signature[:-1] + bytes([signature[-1] ^ 0x80]))
    assert SigningKey(published.kid, "Ed25519", rfc8032_key()).sign(b"").hex() == RFC8032_SIGNATURE


def test_checkpoint_signature_known_answer_with_the_rfc_8032_key():
    signer = SigningKey("rfc8032-1", "Ed25519", rfc8032_key())
    checkpoint = sign_checkpoint(signer, "node-kat", 1, bytes.fromhex(KAT_ENTRY_HASH),
                                 dt.datetime(2026, 11, 23, 0, 31, tzinfo=dt.UTC))
    assert checkpoint.message() == (
        b'exnode-audit-checkpoint/1\n{"at":"2026-11-23T00:31:00.000000Z","entry_hash":"' + KAT_ENTRY_HASH.encode()
        + b'","node_id":"node-kat","sequence":1}')
    assert checkpoint.signature.hex() == KAT_CHECKPOINT_SIGNATURE
    published = dataclasses.replace(rfc8032_public_key(), kid="rfc8032-1")
    entry = chain([KAT_RECORD], 0, GENESIS)[0]
    result = verify([entry], [checkpoint], keys={"rfc8032-1": published}, node_id="node-kat")
    assert result.ok and result.checkpoints_checked == 1 and result.unsigned_tail == 0


# -- export files -------------------------------------------------------------------------------------

def export_lines(trail: Trail) -> list[str]:
    keys = [{"kid": k.kid, "algorithm": k.algorithm, "public_pem": k.public_pem, "created_at": k.created_at}
            for k in trail.store.public.values()]
    lines = [json.dumps(export_header(NODE, keys, T0), ensure_ascii=False)]
    signed = {c.sequence: c for c in trail.checkpoints}
    for entry in trail.entries:
        lines.append(json.dumps(entry.to_dict(), ensure_ascii=False))
        if entry.sequence in signed:
            lines.append(json.dumps(signed[entry.sequence].to_dict(), ensure_ascii=False))
    return [line + "\n" for line in lines]


def verify_lines(lines: list[str], store: KeyStore) -> VerifyResult:
    header, entries, checkpoints = read_export(lines)
    return verify(entries, checkpoints, keys=store.public, node_id=header["node_id"])


def test_an_export_round_trips_and_verifies(trail: Trail):
    lines = export_lines(trail)
    header, entries, checkpoints = read_export(lines)
    assert header["node_id"] == NODE and header["format"] == "exnode-audit-export/1"
    assert entries == trail.entries and checkpoints == trail.checkpoints
    assert "第1次查询" in lines[1]  # Chinese stays readable in the file
    result = verify_lines(lines, trail.store)
    assert result.ok and result.entries_checked == 10 and result.checkpoints_checked == 2


def test_an_export_of_a_purged_trail_carries_its_anchor(trail: Trail):
    anchor = trail.checkpoints[0]
    del trail.entries[:trail.index(6)]
    trail.checkpoints = trail.checkpoints[1:]
    lines = export_lines(trail)
    lines.insert(1, json.dumps(anchor.to_dict("anchor")) + "\n")
    result = verify_lines(lines, trail.store)
    assert result.ok and result.first_sequence == 6
    assert not verify_lines([lines[0], *lines[2:]], trail.store).ok


@pytest.mark.parametrize("field, value", [("detail", "删改后的内容"), ("subject", "nobody")])
def test_an_edited_entry_line_fails_naming_that_entry(trail: Trail, field: str, value: str):
    lines = export_lines(trail)
    number = next(i for i, line in enumerate(lines) if json.loads(line).get("sequence") == 4
                  and json.loads(line)["type"] == "entry")
    data = json.loads(lines[number])
    data[field] = value
    lines[number] = json.dumps(data, ensure_ascii=False) + "\n"
    assert_broken(verify_lines(lines, trail.store), 4, "entry 4 was altered")


def test_a_dropped_checkpoint_line_still_verifies_the_chain_but_a_dropped_entry_line_does_not(trail: Trail):
    lines = export_lines(trail)
    without_checkpoint = [line for line in lines if json.loads(line)["type"] != "checkpoint"]
    assert verify_lines(without_checkpoint, trail.store).unsigned_tail == 10
    without_entry = [line for line in lines if json.loads(line).get("sequence") != 7
                     or json.loads(line)["type"] != "entry"]
    assert_broken(verify_lines(without_entry, trail.store), 7, "entry 7 is missing")


@pytest.mark.parametrize("bad, words", [
    ("{not json\n", ["line 4", "not an audit export line"]),
    ('{"type": "entry", "sequence": 3}\n', ["line 4", "KeyError"]),
    ('{"type": "sticker"}\n', ["line 4", "unknown line type 'sticker'"]),
    ('{"type": "entry", "sequence": 3, "at": "yesterday"}\n', ["line 4"]),
])
def test_a_malformed_line_is_an_export_file_error_naming_the_line(trail: Trail, bad: str, words: list[str]):
    lines = export_lines(trail)
    lines[3] = bad
    with pytest.raises(ExportFileError) as raised:
        read_export(lines)
    for word in words:
        assert word in str(raised.value)


def test_blank_lines_are_ignored_but_a_file_without_a_header_is_not_an_export(trail: Trail):
    lines = export_lines(trail)
    assert verify_lines([*lines[:3], "\n", *lines[3:], "\n"], trail.store).ok
    with pytest.raises(ExportFileError, match="no header"):
        read_export(lines[1:])
    header = json.loads(lines[0])
    header["format"] = "something-else/1"
    with pytest.raises(ExportFileError, match="line 1"):
        read_export([json.dumps(header), *lines[1:]])
