"""Merkle batches (Merkle 批次): one signature covers a whole batch of records, and the inclusion of any
single record can be proven offline with a short audit path.

The tree is the one of RFC 6962 §2.1 / RFC 9162 §2.1: a leaf is hashed as SHA-256(0x00 || data), an
interior node as SHA-256(0x01 || left || right), and a list of n leaves splits after the largest power
of two below n. An odd node is carried up a level unchanged instead of being paired with a copy of
itself, so no two different leaf lists share a root — the duplicate-leaf ambiguity behind Bitcoin's
CVE-2012-2459 — and the 0x00/0x01 prefixes keep a leaf from posing as an interior node. Roots and
proofs therefore agree with every RFC 6962 implementation (Certificate Transparency, transparency-dev).

Pure Python and ``hashlib`` only: no keys are loaded here. A batch is signed through anything with
``kid``, ``algorithm`` and ``sign(data)`` (``security.keys.SigningKey``), and checked through anything
with ``verify(data, signature)`` (``security.keys.PublicKey``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of a batch with no records, as RFC 6962 defines it: SHA-256 of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_BATCH_SIGNATURE_CONTEXT = b"exnode merkle batch v1\n"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash a record enters the tree with."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node over two subtree hashes."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for position, value in enumerate(hashes):
        if len(value) != HASH_SIZE:
            raise ValueError(f"{what}[{position}] is {len(value)} bytes; a SHA-256 hash is {HASH_SIZE}")


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Pair neighbours; an odd last node moves up unchanged, which yields exactly RFC 6962's split."""
    sha256 = hashlib.sha256
    prefix = _NODE_PREFIX
    paired = [sha256(prefix + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root over hashes that are already ``leaf_hash`` outputs, for callers that stored those.

    Level by level, so a million leaves cost a million node hashes and no recursion or slicing.
    """
    _check_hashes(leaf_hashes, "leaf_hashes")
    if not leaf_hashes:
        return EMPTY_ROOT
    level: Sequence[bytes] = leaf_hashes
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The root over leaf *data* (each is hashed with ``leaf_hash``); EMPTY_ROOT for no leaves."""
    return root_from_leaf_hashes([leaf_hash(data) for data in leaves])


class MerkleTree:
    """Every level of one batch, kept so that proofs for all its records cost O(log n) each.

    Memory is about two hashes per leaf; build it when proofs are handed out, use
    ``root_from_leaf_hashes`` when only the root is needed.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        _check_hashes(leaf_hashes, "leaf_hashes")
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self._levels = levels

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """A tree over leaf data, hashing each as a leaf."""
        return cls([leaf_hash(data) for data in leaves])

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def leaf_hash(self, index: int) -> bytes:
        self._check_index(index)
        return self._levels[0][index]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The audit path of RFC 6962 §2.1.1 (PATH), from the leaf's sibling up to the root's child."""
        self._check_index(index)
        path = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        return path

    def proof(self, index: int) -> Proof:
        """The inclusion proof for one record, ready to serialise next to the signed batch."""
        return Proof(index, self.size, tuple(self.inclusion_proof(index)))

    def _check_index(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"leaf index must be an integer, not {type(index).__name__}")
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} is out of range for a batch of {self.size} leaves")


def inclusion_proof(leaves: Iterable[bytes], index: int) -> list[bytes]:
    """The audit path for leaf data ``leaves[index]``; use MerkleTree to prove many leaves of one batch."""
    return MerkleTree.from_leaves(leaves).inclusion_proof(index)


def root_from_inclusion_proof(leaf_hash_value: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from a leaf hash, per RFC 9162 §2.1.3.2.

    Raises ValueError when the proof cannot belong to a tree of that size at all (index outside the
    tree, a path of the wrong length, a value that is not a 32-byte hash).
    """
    for name, value in (("index", index), ("tree_size", tree_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, not {type(value).__name__}")
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is out of range for a batch of {tree_size} leaves")
    _check_hashes([leaf_hash_value], "leaf_hash")
    _check_hashes(proof, "proof")
    first, last = index, tree_size - 1
    result = leaf_hash_value
    for sibling in proof:
        if last == 0:
            raise ValueError(f"proof has {len(proof)} hashes, more than a tree of {tree_size} leaves needs")
        if first & 1 or first == last:
            result = node_hash(sibling, result)
            # On the right border a node may have been carried up unchanged: skip those levels.
            while first and not first & 1:
                first >>= 1
                last >>= 1
        else:
            result = node_hash(result, sibling)
        first >>= 1
        last >>= 1
    if last != 0:
        raise ValueError(f"proof has {len(proof)} hashes, fewer than a tree of {tree_size} leaves needs")
    return result


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes, *,
                     prehashed: bool = False) -> bool:
    """Whether ``leaf`` is the ``index``-th of ``tree_size`` leaves under ``root``.

    ``leaf`` is leaf data, or with ``prehashed=True`` its ``leaf_hash``. Proofs arrive from outside, so a
    malformed one is an answer (False), not an exception. The root does not commit to ``tree_size`` (a
    left-hand leaf has the same path in a batch of 3 as in one of 4): trust a size only when it is signed,
    as SignedBatch.verify_record does.
    """
    try:
        computed = root_from_inclusion_proof(leaf if prehashed else leaf_hash(leaf), index, tree_size, proof)
    except ValueError:
        return False
    return computed == root


def _from_hex(value: Any, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{field} is not valid hex") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{field} is {len(raw)} bytes; expected {size}")
    return raw


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer")
    return value


@dataclass(frozen=True)
class Proof:
    """审计路径: the inclusion proof of one record in a batch of ``tree_size`` records."""

    index: int
    tree_size: int
    path: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "tree_size": self.tree_size, "path": [h.hex() for h in self.path]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Proof:
        try:
            index, tree_size, path = data["index"], data["tree_size"], data["path"]
        except KeyError as missing:
            raise ValueError(f"proof is missing field {missing}") from None
        if not isinstance(path, list):
            raise ValueError("path must be a list of hex strings")
        return cls(_count(index, "index"), _count(tree_size, "tree_size"),
                   tuple(_from_hex(h, f"path[{i}]", HASH_SIZE) for i, h in enumerate(path)))


class BatchSigner(Protocol):
    @property
    def kid(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    def sign(self, data: bytes) -> bytes: ...


class BatchVerifier(Protocol):
    @property
    def kid(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    def verify(self, data: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class SignedBatch:
    """A batch root with the node's signature: what a verifier needs besides the record and its Proof."""

    tree_size: int
    root: bytes
    kid: str
    algorithm: str
    signature: bytes

    @staticmethod
    def signing_input(tree_size: int, root: bytes) -> bytes:
        """The bytes actually signed: a context label, the size (8 bytes, big-endian) and the root.

        The size is signed because a proof is checked against it; the label keeps a batch signature from
        being valid as any other message the same node key signs.
        """
        if isinstance(tree_size, bool) or not isinstance(tree_size, int) or not 0 <= tree_size < 1 << 64:
            raise ValueError(f"tree_size {tree_size!r} is not a count of leaves")
        if len(root) != HASH_SIZE:
            raise ValueError(f"root is {len(root)} bytes; a SHA-256 hash is {HASH_SIZE}")
        return _BATCH_SIGNATURE_CONTEXT + tree_size.to_bytes(8, "big") + root

    @classmethod
    def sign(cls, tree_size: int, root: bytes, signer: BatchSigner) -> SignedBatch:
        signature = signer.sign(cls.signing_input(tree_size, root))
        return cls(tree_size, root, signer.kid, signer.algorithm, signature)

    @classmethod
    def sign_tree(cls, tree: MerkleTree, signer: BatchSigner) -> SignedBatch:
        return cls.sign(tree.size, tree.root, signer)

    def verify_signature(self, key: BatchVerifier) -> bool:
        """Whether ``key`` (which must be the one named by ``kid``) signed this root and size."""
        if key.kid != self.kid or key.algorithm != self.algorithm:
            return False
        try:
            message = self.signing_input(self.tree_size, self.root)
        except ValueError:
            return False
        return key.verify(message, self.signature)

    def verify_record(self, leaf: bytes, proof: Proof, key: BatchVerifier, *, prehashed: bool = False) -> bool:
        """The whole offline check: the proof leads to this root, and the root carries a valid signature."""
        return (proof.tree_size == self.tree_size
                and verify_inclusion(leaf, proof.index, proof.tree_size, proof.path, self.root, prehashed=prehashed)
                and self.verify_signature(key))

    def to_dict(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root": self.root.hex(), "kid": self.kid,
                "algorithm": self.algorithm, "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedBatch:
        try:
            tree_size, root, kid = data["tree_size"], data["root"], data["kid"]
            algorithm, signature = data["algorithm"], data["signature"]
        except KeyError as missing:
            raise ValueError(f"signed batch is missing field {missing}") from None
        for field, value in (("kid", kid), ("algorithm", algorithm)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field} must be a non-empty string")
        return cls(_count(tree_size, "tree_size"), _from_hex(root, "root", HASH_SIZE), kid, algorithm,
                   _from_hex(signature, "signature"))


class RootAccumulator:
    """The RFC 6962 root of a leaf sequence that arrives in pieces, holding O(log n) hashes.

    The stack holds the complete subtrees of the binary decomposition of the size so far (largest first);
    the root folds them from the right, which is exactly RFC 6962's split at the largest power of two. A
    verified batch whose size is a power of two and that starts at a multiple of it enters as one
    subtree (its root), so a pull of a million records costs no more hashing than its batches' roots.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self.size = 0

    def add_leaf_hash(self, value: bytes) -> None:
        self._push(1, value)

    def add_leaf_hashes(self, values: Sequence[bytes], root: bytes | None = None) -> None:
        """Add consecutive leaves; ``root`` (their RFC 6962 root, already computed) is used when the
        piece is an aligned complete subtree, so it is not hashed twice."""
        count = len(values)
        if count and count & (count - 1) == 0 and self.size % count == 0:
            self._push(count, root if root is not None else root_from_leaf_hashes(values))
            return
        for value in values:
            self._push(1, value)

    def _push(self, size: int, value: bytes) -> None:
        _check_hashes([value], "subtree")
        stack = self._stack
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            value = node_hash(left, value)
            size *= 2
        stack.append((size, value))
        self.size = sum(s for s, _ in stack)

    @property
    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        result = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            result = node_hash(left, result)
        return result
