"""Authenticated encryption, key wrapping and keyed hashes by suite (security/secrecy.py), and the node's
key-encryption keys in its key files (security/keys.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.keys import KEK_RING, KeyStore, UnusableKey
from security.secrecy import (
    AES_256_GCM,
    SM4_GCM,
    Cipher,
    TamperedCiphertext,
    cipher_for_suite,
    keyed_hash,
    new_key,
    unwrap,
    wrap,
)

SUITES = (AES_256_GCM, SM4_GCM)


@pytest.mark.parametrize("algorithm", SUITES)
@given(plaintext=st.binary(min_size=1, max_size=2000), aad=st.binary(max_size=64))
def test_open_of_seal_is_the_plaintext(algorithm: str, plaintext: bytes, aad: bytes):
    cipher = Cipher(algorithm, new_key(algorithm))
    sealed = cipher.seal(plaintext, aad)
    assert len(plaintext) < 16 or plaintext not in sealed
    assert cipher.open(sealed, aad, "x") == plaintext


@pytest.mark.parametrize("algorithm", SUITES)
def test_a_changed_moved_or_foreign_ciphertext_is_refused_naming_it(algorithm: str):
    cipher = Cipher(algorithm, new_key(algorithm))
    sealed = cipher.seal("公民身份号码 150102196001010011".encode(), b"row 1")
    changed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for bad, aad, who in ((changed, b"row 1", cipher), (sealed, b"row 2", cipher),
                          (sealed, b"row 1", Cipher(algorithm, new_key(algorithm))), (sealed[:10], b"row 1", cipher)):
        with pytest.raises(TamperedCiphertext, match="record DB-1"):
            who.open(bad, aad, "record DB-1")


def test_the_suite_decides_the_cipher_and_sm4_is_the_standard_one():
    assert cipher_for_suite("SM2-SM3") == SM4_GCM
    assert cipher_for_suite("Ed25519") == cipher_for_suite("ECDSA-P256") == AES_256_GCM
    # GB/T 32907-2016 Appendix A.1: SM4 of 0123456789abcdeffedcba9876543210 under the same key is
    # 681edf34d206965e86b3e94f536e4246. CTR's first keystream block is E(counter), so with the standard's
    # plaintext as the counter it is the standard's ciphertext: the library's block cipher is SM4.
    import gmssl_pyx
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    ctr_block = bytes.fromhex("0123456789abcdeffedcba9876543210")
    stream = gmssl_pyx.sm4_ctr_encrypt(key, ctr_block, bytes(16))
    assert stream.hex() == "681edf34d206965e86b3e94f536e4246"


@pytest.mark.parametrize("algorithm", SUITES)
def test_a_wrapped_data_key_is_bound_to_its_id(algorithm: str):
    kek = Cipher(algorithm, new_key(algorithm))
    material = new_key(algorithm)
    wrapped = wrap(kek, "k1", material)
    assert unwrap(kek, "k1", wrapped) == material
    with pytest.raises(TamperedCiphertext, match="data key k2"):
        unwrap(kek, "k2", wrapped)


def test_keyed_hashes_are_hmac_sha256_or_hmac_sm3_and_need_the_key():
    import hashlib
    import hmac
    key = os.urandom(32)
    assert keyed_hash(AES_256_GCM, key, "150102196001010011") == hmac.new(
        key, b"150102196001010011", hashlib.sha256).hexdigest()
    sm3 = keyed_hash(SM4_GCM, key[:16], "150102196001010011")
    assert len(sm3) == 64 and sm3 != keyed_hash(SM4_GCM, os.urandom(16), "150102196001010011")


@pytest.mark.parametrize(("signing", "cipher", "size"), [("Ed25519", AES_256_GCM, 32), ("SM2-SM3", SM4_GCM, 16)])
def test_a_node_gets_a_key_encryption_key_of_its_suite_and_rotation_keeps_the_old_one(
        tmp_path: Path, signing: str, cipher: str, size: int):
    store = KeyStore.create(tmp_path / "keys", signing)
    assert store.kek.algorithm == cipher == store.data_cipher and len(store.kek.cipher.key) == size
    kek_file = tmp_path / "keys" / f"kek-{store.kek_active}.key"
    assert kek_file.stat().st_mode & 0o777 == 0o600
    rotated = store.rotate_kek()
    assert rotated.kek_active != store.kek_active and set(rotated.keks) == {store.kek_active, rotated.kek_active}
    assert KeyStore.ensure_kek(tmp_path / "keys") is None


def test_a_missing_or_broken_key_encryption_key_is_named(tmp_path: Path):
    store = KeyStore.create(tmp_path / "keys")
    kek_file = tmp_path / "keys" / f"kek-{store.kek_active}.key"
    kek_file.write_bytes(b"not base64 !!\n")
    with pytest.raises(UnusableKey, match=str(kek_file)):
        KeyStore.load(tmp_path / "keys")
    kek_file.unlink()
    with pytest.raises(UnusableKey, match="active key-encryption key"):
        KeyStore.load(tmp_path / "keys")
    (tmp_path / "keys" / KEK_RING).unlink()
    with pytest.raises(UnusableKey, match="exnode init"):
        KeyStore.load(tmp_path / "keys")
    assert KeyStore.ensure_kek(tmp_path / "keys") is not None
    assert KeyStore.load(tmp_path / "keys").kek.algorithm == AES_256_GCM
