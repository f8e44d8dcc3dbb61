"""Pull cursors and the streaming Merkle root: pure, no I/O."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.records import Operation, Record, canonical_payload, canonical_record
from node.services.pull import unmasked_leaf
from node.storage.pull_repository import PulledRow
from security import merkle
from security.pull import CursorCodec, CursorError, batch_signing_input, manifest_signing_input

SECRET = b"s" * 32


def test_a_cursor_reads_back_for_its_platform_only():
    codec = CursorCodec(SECRET, "node-a")
    cursor = codec.issue("11100000MB01284764/node", 123)
    assert codec.read("11100000MB01284764/node", cursor) == 123
    with pytest.raises(CursorError, match="belongs to platform '11100000MB01284764/node'") as error:
        codec.read("11150100011627354Q/granted", cursor)
    assert error.value.kind == "other_platform"


def test_a_cursor_of_another_node_or_secret_is_refused():
    cursor = CursorCodec(SECRET, "node-b").issue("p", 5)
    with pytest.raises(CursorError, match="issued by node 'node-b'"):
        CursorCodec(SECRET, "node-a").read("p", cursor)
    same_name = CursorCodec(b"t" * 32, "node-a").issue("p", 5)
    with pytest.raises(CursorError) as error:
        CursorCodec(SECRET, "node-a").read("p", same_name)
    assert error.value.kind == "forged"


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 63) - 1), st.integers(min_value=0, max_value=200),
       st.integers(min_value=1, max_value=255))
def test_any_changed_byte_of_a_cursor_is_refused(position, index, flip):
    codec = CursorCodec(SECRET, "node-a")
    cursor = codec.issue("platform", position)
    raw = bytearray(base64.urlsafe_b64decode(cursor[4:] + "=" * (-len(cursor[4:]) % 4)))
    raw[index % len(raw)] ^= flip
    changed = "pc1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(CursorError):
        codec.read("platform", changed)


@pytest.mark.parametrize("text", ["", "pc1.", "pc1.!!!", "xyz", "pc1.AAAA", "pc1." + "A" * 600])
def test_garbage_is_not_a_cursor(text):
    with pytest.raises(CursorError) as error:
        CursorCodec(SECRET, "node-a").read("p", text)
    assert error.value.kind == "malformed"


@given(st.lists(st.integers(min_value=0, max_value=9), max_size=40), st.integers(min_value=0, max_value=300))
def test_the_accumulated_root_is_the_rfc6962_root_however_the_leaves_arrive(pieces, extra):
    leaves = [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(sum(pieces) + extra)]
    accumulator = merkle.RootAccumulator()
    at = 0
    for size in [*pieces, extra]:
        accumulator.add_leaf_hashes(leaves[at:at + size])
        at += size
    assert accumulator.size == len(leaves)
    assert accumulator.root == merkle.root_from_leaf_hashes(leaves)


def test_signed_statements_bind_every_field():
    root = bytes(32)
    base = dict(node_id="n", platform="p", index=0, from_cursor="a", to_cursor="b", record_count=1, root=root)
    inputs = {batch_signing_input(**base)}
    for field, value in (("node_id", "m"), ("platform", "q"), ("index", 1), ("from_cursor", "ab"),
                         ("to_cursor", "c"), ("record_count", 2), ("root", b"\1" * 32)):
        inputs.add(batch_signing_input(**{**base, field: value}))
    assert len(inputs) == 8
    manifest = dict(node_id="n", platform="p", from_cursor="a", to_cursor="b", record_count=1, batch_count=1,
                    root=root, until_day="")
    assert manifest_signing_input(**manifest) != manifest_signing_input(**{**manifest, "until_day": "2026-03-02"})
    assert manifest_signing_input(**manifest) not in inputs


_VALUES = st.one_of(st.text(), st.integers(min_value=-(1 << 53), max_value=1 << 53), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))


@settings(deadline=None)
@given(st.dictionaries(st.text(min_size=1), _VALUES, max_size=8), st.sampled_from(["UPSERT", "DELETE"]),
       st.integers(min_value=0, max_value=(1 << 63) - 1), st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True))
def test_the_fast_leaf_of_a_stored_record_is_its_canonical_form(payload, operation, sequence, record_id):
    stored = json.dumps(payload, ensure_ascii=False, sort_keys=True)  # as ExchangeRepository.add_records stores it
    row = PulledRow(1, "11100000MB01284764", "311140001/000001", record_id, sequence, operation, stored)
    expected = canonical_record(row.provider_code, row.resource_code,
                                Record(record_id, sequence, Operation(operation), payload))
    assert unmasked_leaf(row) == expected
    # With the stored content hash: the canonical text is used as it is; spaced text falls back to re-encoding.
    content_hash = hashlib.sha256(expected).hexdigest()
    canonical_row = replace(row, payload=canonical_payload(payload), content_hash=content_hash)
    assert unmasked_leaf(canonical_row) == expected
    assert unmasked_leaf(replace(row, content_hash=content_hash)) == expected
