"""Merkle batches: roots and proofs agree with RFC 6962, every record's proof verifies offline, and any
change to the record, the path, the position, the size or the root is caught."""

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    Proof,
    SignedBatch,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_inclusion,
)

# Published vectors. The leaves, the roots for sizes 1..8 and the inclusion proofs are those of
# transparency-dev/merkle proof/verify_test.go (inherited from Google's certificate-transparency C++ and
# Go test data); the hasher vectors are from transparency-dev/merkle rfc6962/rfc6962_test.go.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (0-based index, tree size, path). verify_test.go numbers leaves from 1: {1,8}, {6,8}, {3,3}, {2,5}.
CT_INCLUSION_PROOFS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")  # verify_test.go


def reference_root(hashes):
    """MTH straight from RFC 6962 §2.1, recursive and slow, to check the iterative code against."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(reference_root(hashes[:split]), reference_root(hashes[split:]))


def reference_path(index, hashes):
    """PATH(m, D[n]) straight from RFC 6962 §2.1.1."""
    if len(hashes) == 1:
        return []
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    if index < split:
        return reference_path(index, hashes[:split]) + [reference_root(hashes[split:])]
    return reference_path(index - split, hashes[split:]) + [reference_root(hashes[:split])]


def numbered_leaves(count):
    return [f"record-{i}".encode() for i in range(count)]


def flip_bit(value, byte=0, mask=8):
    return value[:byte] + bytes([value[byte] ^ mask]) + value[byte + 1:]


class FakeKey:
    """Stands in for security.keys: an in-memory keyed hash with the same kid/algorithm/sign/verify shape."""

    def __init__(self, kid, secret=b"secret"):
        self.kid = kid
        self.algorithm = "fake-hmac"
        self._secret = secret

    def sign(self, data):
        return hashlib.sha256(self._secret + data).digest()

    def verify(self, data, signature):
        return self.sign(data) == signature


def test_hashes_match_rfc6962_hasher_vectors():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_roots_match_the_published_certificate_transparency_roots(size):
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    assert root_from_leaf_hashes([leaf_hash(leaf) for leaf in CT_LEAVES[:size]]).hex() == CT_ROOTS[size]
    assert MerkleTree.from_leaves(CT_LEAVES[:size]).root.hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION_PROOFS)
def test_inclusion_proofs_match_the_published_ones_and_verify(index, size, path):
    expected = [bytes.fromhex(h) for h in path]
    root = bytes.fromhex(CT_ROOTS[size])
    assert inclusion_proof(CT_LEAVES[:size], index) == expected
    assert root_from_inclusion_proof(leaf_hash(CT_LEAVES[index]), index, size, expected) == root
    assert verify_inclusion(CT_LEAVES[index], index, size, expected, root)


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION_PROOFS)
def test_corrupted_published_proofs_are_rejected(index, size, path):
    """The probes of verify_test.go's corruptInclusionProof: each must fail."""
    proof = [bytes.fromhex(h) for h in path]
    root = bytes.fromhex(CT_ROOTS[size])
    leaf = leaf_hash(CT_LEAVES[index])
    probes = [
        (index - 1, size, root, leaf, proof), (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof), (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof), (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]), (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]), (index, size, root, leaf, [root, *proof]),
        (index, size, root, leaf, proof[:-1]),
        (index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]),
    ]
    probes += [(index, size, root, leaf, proof[:i] + [flip_bit(proof[i])] + proof[i + 1:])
               for i in range(len(proof))]
    for probe_index, probe_size, probe_root, probe_leaf, probe_proof in probes:
        assert not verify_inclusion(probe_leaf, probe_index, probe_size, probe_proof, probe_root, prehashed=True)


def test_a_single_leaf_batch_has_the_leaf_hash_as_root_and_an_empty_proof():
    tree = MerkleTree.from_leaves([b"data"])
    assert tree.root == leaf_hash(b"data")
    assert tree.inclusion_proof(0) == []
    assert verify_inclusion(b"data", 0, 1, [], tree.root)
    assert not verify_inclusion(b"data", 0, 1, [], b"")


@pytest.mark.parametrize("size", range(1, 71))
def test_every_record_of_every_batch_size_up_to_70_proves_its_inclusion(size):
    leaves = numbered_leaves(size)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    tree = MerkleTree(hashes)
    assert tree.root == reference_root(hashes) == merkle_root(leaves)
    for index in range(size):
        path = tree.inclusion_proof(index)
        assert path == reference_path(index, hashes)
        assert verify_inclusion(leaves[index], index, size, path, tree.root)


@pytest.mark.parametrize("size", range(1, 71))
def test_any_change_to_record_path_position_size_or_root_fails(size):
    leaves = numbered_leaves(size)
    tree = MerkleTree.from_leaves(leaves)
    root = tree.root
    key = FakeKey("k1")
    batch = SignedBatch.sign_tree(tree, key)
    for index in range(size):
        path = tree.inclusion_proof(index)
        assert batch.verify_record(leaves[index], Proof(index, size, tuple(path)), key)
        assert not verify_inclusion(leaves[index] + b"!", index, size, path, root)
        assert not verify_inclusion(leaves[index], index, size, path, flip_bit(root, 31, 1))
        for other in (index - 1, index + 1):
            if 0 <= other < size:
                assert not verify_inclusion(leaves[index], other, size, path, root)
        for other_size in (size - 1, size + 1, 2 * size):
            assert not batch.verify_record(leaves[index], Proof(index, other_size, tuple(path)), key)
        for position in range(len(path)):
            tampered = path[:position] + [flip_bit(path[position], 31, 1)] + path[position + 1:]
            assert not verify_inclusion(leaves[index], index, size, tampered, root)


def test_the_batch_size_is_bound_by_the_signature_because_the_root_alone_does_not_fix_it():
    """In RFC 6962 a left-hand leaf has the same path in a batch of 3 as in one of 4, so the signed
    batch carries the size and a proof claiming another size is refused."""
    leaves = numbered_leaves(3)
    tree = MerkleTree.from_leaves(leaves)
    path = tree.inclusion_proof(0)
    assert verify_inclusion(leaves[0], 0, 4, path, tree.root)
    key = FakeKey("k1")
    batch = SignedBatch.sign_tree(tree, key)
    assert not batch.verify_record(leaves[0], Proof(0, 4, tuple(path)), key)
    forged = SignedBatch(4, batch.root, batch.kid, batch.algorithm, batch.signature)
    assert not forged.verify_record(leaves[0], Proof(0, 4, tuple(path)), key)


def test_odd_batches_are_not_padded_by_duplicating_the_last_record():
    """CVE-2012-2459: with padding, [a, b, c] and [a, b, c, c] would share a root."""
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])


def test_a_leaf_cannot_pose_as_an_interior_node():
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([left + right]) != merkle_root([b"a", b"b"])


@pytest.mark.parametrize(("size", "index"), [(0, 0), (1, 1), (5, 5), (5, -1), (8, 100)])
def test_a_proof_for_a_position_outside_the_batch_raises(size, index):
    leaves = numbered_leaves(size)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(leaves, index)
    with pytest.raises(ValueError, match="out of range"):
        MerkleTree.from_leaves(leaves).proof(index)


def test_verifying_a_position_outside_the_batch_is_false_and_computing_its_root_raises():
    with pytest.raises(ValueError, match="out of range"):
        root_from_inclusion_proof(leaf_hash(b"x"), 3, 3, [])
    assert not verify_inclusion(b"x", 3, 3, [], EMPTY_ROOT)
    assert not verify_inclusion(b"x", 0, 0, [], EMPTY_ROOT)


def test_leaf_hashes_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match=r"leaf_hashes\[1\] is 3 bytes"):
        root_from_leaf_hashes([leaf_hash(b"a"), b"abc"])


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=150), st.data())
def test_random_batches_agree_with_rfc6962_and_prove_each_record(leaves, data):
    hashes = [leaf_hash(leaf) for leaf in leaves]
    tree = MerkleTree(hashes)
    assert tree.root == reference_root(hashes)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1), label="index")
    proof = tree.proof(index)
    assert list(proof.path) == reference_path(index, hashes)
    assert verify_inclusion(leaves[index], index, len(leaves), proof.path, tree.root)
    other = data.draw(st.binary(max_size=40), label="other leaf")
    if other != leaves[index]:
        assert not verify_inclusion(other, index, len(leaves), proof.path, tree.root)


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.data())
def test_proof_survives_json(leaves, data):
    tree = MerkleTree.from_leaves(leaves)
    proof = tree.proof(data.draw(st.integers(min_value=0, max_value=len(leaves) - 1)))
    assert Proof.from_dict(json.loads(json.dumps(proof.to_dict()))) == proof


def test_a_signed_batch_proves_a_record_offline_after_a_json_round_trip():
    leaves = numbered_leaves(11)
    tree = MerkleTree.from_leaves(leaves)
    key = FakeKey("k1")
    batch = SignedBatch.sign_tree(tree, key)
    batch_json, proof_json = json.dumps(batch.to_dict()), json.dumps(tree.proof(7).to_dict())

    received_batch = SignedBatch.from_dict(json.loads(batch_json))
    received_proof = Proof.from_dict(json.loads(proof_json))
    assert received_batch == batch
    assert received_batch.verify_record(leaves[7], received_proof, key)
    assert received_batch.verify_record(leaf_hash(leaves[7]), received_proof, key, prehashed=True)
    assert not received_batch.verify_record(leaves[6], received_proof, key)


def test_a_signed_batch_is_rejected_for_another_key_size_root_or_signature():
    tree = MerkleTree.from_leaves(numbered_leaves(5))
    key = FakeKey("k1")
    batch = SignedBatch.sign_tree(tree, key)
    assert batch.verify_signature(key)
    assert not batch.verify_signature(FakeKey("k2"))
    assert not batch.verify_signature(FakeKey("k1", secret=b"other"))
    fields = batch.to_dict()
    for field, value in (("tree_size", 6), ("root", EMPTY_ROOT.hex()),
                         ("signature", flip_bit(batch.signature).hex()), ("kid", "k2")):
        assert not SignedBatch.from_dict({**fields, field: value}).verify_signature(key)
    proof = tree.proof(2)
    assert not batch.verify_record(b"record-2", Proof(2, 6, proof.path), key)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("root", "zz", "root is not valid hex"),
    ("root", "00" * 31, "root is 31 bytes"),
    ("tree_size", -1, "tree_size must be a non-negative integer"),
    ("tree_size", True, "tree_size must be a non-negative integer"),
    ("kid", "", "kid must be a non-empty string"),
    ("signature", 5, "signature must be a hex string"),
])
def test_a_malformed_signed_batch_names_the_bad_field(field, value, message):
    fields = SignedBatch.sign_tree(MerkleTree.from_leaves([b"a"]), FakeKey("k1")).to_dict()
    with pytest.raises(ValueError, match=message):
        SignedBatch.from_dict({**fields, field: value})
    del fields[field]
    with pytest.raises(ValueError, match=f"missing field '{field}'"):
        SignedBatch.from_dict(fields)


def test_a_malformed_proof_names_the_bad_field():
    with pytest.raises(ValueError, match=r"path\[1\] is 2 bytes"):
        Proof.from_dict({"index": 0, "tree_size": 4, "path": ["00" * 32, "0000"]})
    with pytest.raises(ValueError, match="missing field 'path'"):
        Proof.from_dict({"index": 0, "tree_size": 4})
