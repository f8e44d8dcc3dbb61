"""Secrecy of personal data: authenticated encryption, key wrapping and keyed hashes, by suite.

The cipher follows the node's signing suite (DESIGN.md §13): Ed25519 and ECDSA-P256 nodes use AES-256-GCM
(``cryptography``) and HMAC-SHA-256; SM2-SM3 nodes use SM4-GCM (GB/T 32907-2016 in GCM mode) and HMAC-SM3,
both from gmssl-pyx, the C binding of GmSSL 3 that already signs for that suite.

A sealed value is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the associated data binds it to its
place (a record's provider, resource and id; an outbox row; a data key's id), so a ciphertext copied to
another row fails its tag like a changed one. Pure functions over bytes: the key material comes from
``security.keys`` (the key-encryption key) and the data keys the storage keeps wrapped by it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import gmssl_pyx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from security.errors import SecurityError

AES_256_GCM = "AES-256-GCM"
SM4_GCM = "SM4-GCM"
CIPHERS = (AES_256_GCM, SM4_GCM)
KEY_SIZES = {AES_256_GCM: 32, SM4_GCM: 16}
NONCE_SIZE = 12
TAG_SIZE = 16


class TamperedCiphertext(SecurityError):
    """A sealed value failed its authentication tag: changed, truncated, moved to another row, or sealed
    under another key. The message names the value (``what``)."""


class UnknownCipher(SecurityError):
    pass


def cipher_for_suite(signing_algorithm: str) -> str:
    """The data cipher of a signing suite: SM4-GCM with SM2-SM3 (国密), AES-256-GCM otherwise."""
    return SM4_GCM if signing_algorithm == "SM2-SM3" else AES_256_GCM


def new_key(algorithm: str) -> bytes:
    if algorithm not in KEY_SIZES:
        raise UnknownCipher(f"unknown cipher {algorithm!r}; known: {', '.join(CIPHERS)}")
    return os.urandom(KEY_SIZES[algorithm])


@dataclass(frozen=True)
class Cipher:
    """One key of one algorithm. ``AESGCM`` objects are made once per key (their set-up is most of the cost
    of sealing a small record)."""

    algorithm: str
    key: bytes

    def __post_init__(self) -> None:
        if self.algorithm not in KEY_SIZES:
            raise UnknownCipher(f"unknown cipher {self.algorithm!r}; known: {', '.join(CIPHERS)}")
        if len(self.key) != KEY_SIZES[self.algorithm]:
            raise UnknownCipher(f"a {self.algorithm} key has {KEY_SIZES[self.algorithm]} bytes, not {len(self.key)}")
        if self.algorithm == AES_256_GCM:
            object.__setattr__(self, "_aes", AESGCM(self.key))

    def seal(self, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
        """``nonce``: the caller's, when it guarantees it never repeats under this key (a counter under a
        fresh key, ``security.sealing.RowSeal``); otherwise 12 random bytes."""
        if nonce is None:
            nonce = os.urandom(NONCE_SIZE)
        elif len(nonce) != NONCE_SIZE:
            raise ValueError(f"a nonce has {NONCE_SIZE} bytes, not {len(nonce)}")
        if self.algorithm == AES_256_GCM:
            return nonce + self._aes.encrypt(nonce, plaintext, aad)  # type: ignore[attr-defined]
        if not plaintext:  # GmSSL refuses it; nothing here seals an empty value (JSON, packed bodies, keys)
            raise ValueError("SM4-GCM seals at least one byte")
        ciphertext, tag = gmssl_pyx.sm4_gcm_encrypt(self.key, nonce, aad, plaintext)
        return nonce + ciphertext + tag

    def open(self, sealed: bytes, aad: bytes, what: str) -> bytes:
        """The plaintext; TamperedCiphertext naming ``what`` when the tag does not verify."""
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise TamperedCiphertext(f"{what}: ciphertext is truncated ({len(sealed)} bytes)")
        nonce, body = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
        try:
            if self.algorithm == AES_256_GCM:
                return self._aes.decrypt(nonce, body, aad)  # type: ignore[attr-defined]
            # GmSSL prints a line to stderr for each tag it rejects; that is the library, not an error here.
            return gmssl_pyx.sm4_gcm_decrypt(self.key, nonce, aad, body[:-TAG_SIZE], body[-TAG_SIZE:])
        except (InvalidTag, gmssl_pyx.InvalidValueError, gmssl_pyx.GmsslInnerError):
            raise TamperedCiphertext(f"{what}: the {self.algorithm} tag does not verify (the ciphertext was "
                                     "changed, moved from another row, or sealed under another key)") from None


def wrap(kek: Cipher, key_id: str, data_key: bytes) -> bytes:
    """A data key sealed by the key-encryption key, bound to its id."""
    return kek.seal(data_key, b"exnode data key " + key_id.encode())


def unwrap(kek: Cipher, key_id: str, wrapped: bytes) -> bytes:
    return kek.open(wrapped, b"exnode data key " + key_id.encode(), f"data key {key_id}")


def keyed_hash(algorithm: str, key: bytes, value: str) -> str:
    """HMAC-SHA-256 (or HMAC-SM3 for the national suite) of an identifier, hex: what an index stores and a
    lookup compares instead of a 公民身份号码 or phone number in clear."""
    data = value.encode("utf-8")
    if algorithm == SM4_GCM:
        return gmssl_pyx.sm3_hmac(key, data).hex()
    return hmac.new(key, data, hashlib.sha256).hexdigest()

