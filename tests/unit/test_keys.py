"""The node's signing keys: every suite creates, loads and rotates the same way, old signatures keep
verifying after a rotation, and the SM2-SM3 suite conforms to the published GM/T examples."""

import base64
import json
import stat

import gmssl_pyx
import pytest

from security.keys import (
    ALGORITHMS,
    KEYRING,
    SM2_SIGNER_ID,
    KeyStore,
    PublicKey,
    SigningKey,
    Sm2PrivateKey,
    UnusableKey,
    pem,
)

# GM/T 0003.5-2012 Annex A (= GB/T 32918.5-2016 Annex A): SM2 signature on the recommended curve with the
# GM/T 0009 default signer id. The key, message, k and (r, s) are those of OpenSSL test/sm2_internal_test.c
# (sm2_sig_test); the public key is d·G as the standard prints it; Z_A and e are Z_exp and Dgst_exp of
# guanzhi/GmSSL crypto/sm2/sm2test.c.
ANNEX_A_PRIVATE = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
ANNEX_A_PUBLIC_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
ANNEX_A_PUBLIC_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
ANNEX_A_MESSAGE = b"message digest"
ANNEX_A_R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
ANNEX_A_S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
ANNEX_A_Z = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
ANNEX_A_DIGEST = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
# sm2p256v1 parameters a, b, G (GM/T 0003.5-2012; as in OpenSSL's sm2_internal_test.c gm_group).
SM2_A = "fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc"
SM2_B = "28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93"
SM2_GX = "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7"
SM2_GY = "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0"
# The DER layouts `openssl genpkey -algorithm SM2` writes (PKCS#8 with the public key) and
# `openssl pkey -pubout` prints (SubjectPublicKeyInfo), around the key bytes.
SM2_SPKI_PREFIX = "3059301306072a8648ce3d020106082a811ccf5501822d03420004"
SM2_PKCS8_PREFIX = "308187020100301306072a8648ce3d020106082a811ccf5501822d046d306b0201010420"
SM2_PKCS8_PUBLIC = "a14403420004"


def pem_body(text):
    return base64.b64decode("".join(text.splitlines()[1:-1]))


def der_integer(value):
    body = value.to_bytes((value.bit_length() + 8) // 8, "big")
    return b"\x02" + bytes([len(body)]) + body


def der_signature(r_hex, s_hex):
    """SM2Signature ::= SEQUENCE { r INTEGER, s INTEGER } (GM/T 0009-2012 §7.3)."""
    body = der_integer(int(r_hex, 16)) + der_integer(int(s_hex, 16))
    return b"\x30" + bytes([len(body)]) + body


def annex_a_public_key():
    der = bytes.fromhex(SM2_SPKI_PREFIX + ANNEX_A_PUBLIC_X + ANNEX_A_PUBLIC_Y)
    return PublicKey("annex-a", "SM2-SM3", pem("PUBLIC KEY", der).decode(), "2012-03-21T00:00:00+00:00")


def flip_last_bit(value):
    return value[:-1] + bytes([value[-1] ^ 1])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_new_key_store_signs_and_its_published_key_verifies(tmp_path, algorithm):
    store = KeyStore.create(tmp_path / "keys", algorithm)
    assert store.active.algorithm == algorithm
    published = store.public[store.active.kid]
    signature = store.active.sign(b"batch root")
    assert published.verify(b"batch root", signature)
    assert not published.verify(b"batch root!", signature)
    assert not published.verify(b"batch root", flip_last_bit(signature))
    assert not published.verify(b"batch root", b"")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_private_keys_are_readable_by_the_owner_only(tmp_path, algorithm):
    store = KeyStore.create(tmp_path / "keys", algorithm)
    key_file = tmp_path / "keys" / f"node-{store.active.kid}.key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    ring = json.loads((tmp_path / "keys" / KEYRING).read_text())
    assert ring["active"] == store.active.kid
    assert ring["keys"][0]["algorithm"] == algorithm
    assert ring["keys"][0]["public_pem"].startswith("-----BEGIN PUBLIC KEY-----\n")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_loaded_key_store_signs_with_the_same_key(tmp_path, algorithm):
    created = KeyStore.create(tmp_path / "keys", algorithm)
    loaded = KeyStore.load(tmp_path / "keys")
    assert (loaded.active.kid, loaded.active.algorithm) == (created.active.kid, algorithm)
    assert created.public[created.active.kid].verify(b"data", loaded.active.sign(b"data"))
    assert loaded.public[loaded.active.kid].verify(b"data", created.active.sign(b"data"))


@pytest.mark.parametrize("before", ALGORITHMS)
@pytest.mark.parametrize("after", ALGORITHMS)
def test_signatures_made_before_a_rotation_still_verify(tmp_path, before, after):
    store = KeyStore.create(tmp_path / "keys", before)
    old_kid, old_signature = store.active.kid, store.active.sign(b"last year's batch")
    rotated = store.rotate(after)
    assert rotated.active.kid != old_kid
    assert rotated.active.algorithm == after
    reloaded = KeyStore.load(tmp_path / "keys")
    assert reloaded.active.kid == rotated.active.kid
    assert set(reloaded.public) == {old_kid, rotated.active.kid}
    assert reloaded.public[old_kid].verify(b"last year's batch", old_signature)
    assert not reloaded.public[rotated.active.kid].verify(b"last year's batch", old_signature)
    assert reloaded.public[rotated.active.kid].verify(b"this year's", reloaded.active.sign(b"this year's"))


def test_rotation_keeps_the_algorithm_unless_told(tmp_path):
    store = KeyStore.create(tmp_path / "keys", "SM2-SM3")
    assert store.rotate().active.algorithm == "SM2-SM3"


def test_an_unknown_algorithm_is_refused_with_the_known_ones_listed(tmp_path):
    with pytest.raises(UnusableKey, match="known: Ed25519, ECDSA-P256, SM2-SM3"):
        KeyStore.create(tmp_path / "keys", "RSA")


def test_an_sm2_key_file_whose_public_half_was_swapped_is_refused(tmp_path):
    first = KeyStore.create(tmp_path / "a", "SM2-SM3")
    other = KeyStore.create(tmp_path / "b", "SM2-SM3")
    path = tmp_path / "a" / f"node-{first.active.kid}.key.pem"
    other_path = tmp_path / "b" / f"node-{other.active.kid}.key.pem"
    mixed = pem("PRIVATE KEY", pem_body(path.read_text())[:-64] + pem_body(other_path.read_text())[-64:])
    path.write_bytes(mixed)
    with pytest.raises(UnusableKey, match="does not match the public key stored with it"):
        KeyStore.load(tmp_path / "a")


def test_a_key_file_of_another_algorithm_than_the_keyring_says_is_refused(tmp_path):
    store = KeyStore.create(tmp_path / "keys", "Ed25519")
    ring_path = tmp_path / "keys" / KEYRING
    ring = json.loads(ring_path.read_text())
    ring["keys"][0]["algorithm"] = "SM2-SM3"
    ring_path.write_text(json.dumps(ring))
    with pytest.raises(UnusableKey, match=f"node-{store.active.kid}.key.pem is unreadable"):
        KeyStore.load(tmp_path / "keys")


def test_a_published_key_that_is_not_of_its_algorithm_is_an_error_not_a_failed_signature(tmp_path):
    store = KeyStore.create(tmp_path / "keys", "Ed25519")
    published = store.public[store.active.kid]
    for algorithm in ("ECDSA-P256", "SM2-SM3"):
        mislabelled = PublicKey(published.kid, algorithm, published.public_pem, published.created_at)
        with pytest.raises(UnusableKey, match=published.kid):
            mislabelled.verify(b"data", store.active.sign(b"data"))


def test_sm3_matches_the_gbt_32905_examples():
    """GB/T 32905-2016 Appendix A, examples 1 and 2, through the SM3 the SM2 suite signs with."""
    assert gmssl_pyx.sm3_hash(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert gmssl_pyx.sm3_hash(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")


def test_sm2_verifies_the_gmt_0003_annex_a_signature_with_the_default_signer_id():
    published = annex_a_public_key()
    signature = der_signature(ANNEX_A_R, ANNEX_A_S)
    assert published.verify(ANNEX_A_MESSAGE, signature)
    assert not published.verify(ANNEX_A_MESSAGE + b".", signature)
    assert not published.verify(ANNEX_A_MESSAGE, der_signature(ANNEX_A_R, ANNEX_A_R))
    point = bytes.fromhex(ANNEX_A_PUBLIC_X + ANNEX_A_PUBLIC_Y)
    assert not gmssl_pyx.sm2_verify(point, ANNEX_A_MESSAGE, signature, b"ALICE123@YAHOO.COM")


def test_sm2_digest_is_sm3_over_z_a_with_the_gmt_0009_default_id():
    """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA) and e = SM3(Z_A || M), GM/T 0003.2 §5.5 / §6.1."""
    identity = SM2_SIGNER_ID
    assert identity == b"1234567812345678"
    entl = (len(identity) * 8).to_bytes(2, "big")
    z_a = gmssl_pyx.sm3_hash(entl + identity + bytes.fromhex(
        SM2_A + SM2_B + SM2_GX + SM2_GY + ANNEX_A_PUBLIC_X + ANNEX_A_PUBLIC_Y))
    assert z_a.hex().upper() == ANNEX_A_Z
    digest = gmssl_pyx.sm3_hash(z_a + ANNEX_A_MESSAGE)
    assert digest.hex().upper() == ANNEX_A_DIGEST
    point = bytes.fromhex(ANNEX_A_PUBLIC_X + ANNEX_A_PUBLIC_Y)
    assert gmssl_pyx.sm2_verify_sm3_digest(point, digest, der_signature(ANNEX_A_R, ANNEX_A_S))


def test_sm2_signatures_are_der_sequences_of_r_and_s_with_a_fresh_k_each_time(tmp_path):
    store = KeyStore.create(tmp_path / "keys", "SM2-SM3")
    first, second = store.active.sign(b"data"), store.active.sign(b"data")
    assert first != second
    for signature in (first, second):
        assert signature[0] == 0x30 and signature[1] == len(signature) - 2
        r_length = signature[3]
        assert signature[2] == 0x02 and signature[4 + r_length] == 0x02
        assert 4 + r_length + 2 + signature[5 + r_length] == len(signature)


def test_the_published_sm2_key_is_a_standard_subject_public_key_info(tmp_path):
    store = KeyStore.create(tmp_path / "keys", "SM2-SM3")
    der = pem_body(store.public[store.active.kid].public_pem)
    assert der.hex().startswith(SM2_SPKI_PREFIX)
    assert len(der) == len(bytes.fromhex(SM2_SPKI_PREFIX)) + 64


def test_the_annex_a_private_key_in_openssl_pkcs8_layout_signs_what_its_public_key_verifies():
    der = bytes.fromhex(SM2_PKCS8_PREFIX + ANNEX_A_PRIVATE + SM2_PKCS8_PUBLIC + ANNEX_A_PUBLIC_X + ANNEX_A_PUBLIC_Y)
    key = SigningKey("annex-a", "SM2-SM3", Sm2PrivateKey.from_pkcs8(der))
    assert annex_a_public_key().verify(ANNEX_A_MESSAGE, key.sign(ANNEX_A_MESSAGE))
