"""The README's test vectors for the signed statements a platform written in another language must
reproduce (pull batch, pull manifest, provider batch) are what the code computes: each vector is parsed
from README.md, recomputed from its inputs, and signed again (Ed25519 is deterministic)."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from security import merkle
from security.keys import PublicKey
from security.pull import batch_signing_input, manifest_signing_input

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"```text\n# test vector: (?P<name>[^\n]+)\n(?P<body>.*?)```", re.S)
_FIELD = re.compile(r"(?P<key>\S.*?)\s{2,}(?P<value>\S.*)")


def vectors() -> dict[str, dict[str, str]]:
    """Each ```text block of README.md that opens with '# test vector: NAME', as {field: value}; a hex
    value may go on over indented lines."""
    found: dict[str, dict[str, str]] = {}
    for block in _BLOCK.finditer(README.read_text(encoding="utf-8")):
        fields: dict[str, str] = {}
        key = ""
        for line in block["body"].splitlines():
            if line[:1].isspace() and key:
                fields[key] += line.strip()
            elif match := _FIELD.fullmatch(line):
                key = match["key"]
                fields[key] = match["value"]
            elif line.strip():
                raise AssertionError(f"test vector {block['name']}: unreadable line {line!r}")
        found[block["name"]] = fields
    return found


VECTORS = vectors()


def _records(vector: dict[str, str]) -> list[bytes]:
    return [vector[f"record {n}"].encode("utf-8") for n in range(int(vector["record_count"]))]


def _check(vector: dict[str, str], signing_input: bytes) -> None:
    """The signing input and the signature are the README's, and the node's verifier accepts them."""
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["ed25519 seed"]))
    public = private.public_key()
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == \
        vector["ed25519 public"]
    assert signing_input.hex() == vector["signing input"]
    signature = private.sign(signing_input)
    assert signature.hex() == vector["signature"]
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert PublicKey("vector", "Ed25519", pem, "").verify(signing_input, bytes.fromhex(vector["signature"]))


def test_the_readme_holds_the_three_vectors():
    assert set(VECTORS) == {"pull batch", "pull manifest", "provider batch"}


def test_the_records_of_the_pull_batch_vector_hash_to_its_root_shared_by_the_others():
    vector = VECTORS["pull batch"]
    leaf_hashes = [merkle.leaf_hash(record) for record in _records(vector)]
    assert [h.hex() for h in leaf_hashes] == [vector[f"leaf hash {n}"] for n in range(len(leaf_hashes))]
    assert merkle.root_from_leaf_hashes(leaf_hashes).hex() == vector["root"]
    assert VECTORS["pull manifest"]["root"] == VECTORS["provider batch"]["root"] == vector["root"]


def test_the_pull_batch_vector():
    v = VECTORS["pull batch"]
    _check(v, batch_signing_input(node_id=v["node_id"], platform=v["platform"], index=int(v["index"]),
                                  from_cursor=v["from_cursor"], to_cursor=v["to_cursor"],
                                  record_count=int(v["record_count"]), root=bytes.fromhex(v["root"])))


def test_the_pull_manifest_vector():
    v = VECTORS["pull manifest"]
    until_day = "" if v["until_day"] == '""' else v["until_day"]
    _check(v, manifest_signing_input(node_id=v["node_id"], platform=v["platform"], from_cursor=v["from_cursor"],
                                     to_cursor=v["to_cursor"], record_count=int(v["record_count"]),
                                     batch_count=int(v["batch_count"]), root=bytes.fromhex(v["root"]),
                                     until_day=until_day))


def test_the_provider_batch_vector():
    v = VECTORS["provider batch"]
    _check(v, merkle.SignedBatch.signing_input(int(v["record_count"]), bytes.fromhex(v["root"])))
