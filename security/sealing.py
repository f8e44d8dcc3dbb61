"""End-to-end secrecy to the consumer (issue 17 §2): the messages the node sends a consumer are sealed to
the encryption public key it registered, so the broker, every tier between and anyone reading the queue see
ciphertext, while the node's signature inside still verifies after the consumer opens them.

Two suites: HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM, by
pyhpke; and for the national suite SM2 public-key encryption (GM/T 0003.4) of an SM4 key, by gmssl-pyx.
One KEM operation per outbox row (HPKE's secret export, RFC 9180 §5.3, gives the row's message key; SM2
wraps a random one); each message of the row is then sealed with AES-/SM4-GCM under that key, bound to its
record id, its nonce the message's number in the row (the key is fresh per row, so no nonce repeats under
it — RFC 9180's own AEAD nonces are a sequence number too). Each message carries what the consumer needs to
derive the key again and opens on its own: a relayed message in one header, ``x-exnode-enc`` (algorithm,
key id, encapsulated key, inner content type; one entry instead of four is a third of what a consumer
spends decoding a message's headers), pull batches and answers in the ``sealing`` map.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import gmssl_pyx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

from security.errors import SecurityError
from security.keys import Sm2PrivateKey, UnusableKey, parse_public_key, pem, unpem
from security.secrecy import AES_256_GCM, KEY_SIZES, NONCE_SIZE, SM4_GCM, Cipher, TamperedCiphertext, new_key

HPKE_X25519 = "X25519-HPKE"
SM2_SM4 = "SM2-SM4"
CONSUMER_ALGORITHMS = (HPKE_X25519, SM2_SM4)
SEALED_CONTENT_TYPE = "application/vnd.exnode.sealed"
"""The content type of a message sealed to its consumer; ``x-exnode-content-type`` names the inner one."""
HEADER_ALGORITHM = "x-exnode-enc-alg"
HEADER_KID = "x-exnode-enc-kid"
HEADER_KEY = "x-exnode-enc-key"
HEADER_INNER = "x-exnode-content-type"
HEADER_SEALED = "x-exnode-enc"
"""A relayed message's sealing in one header: ``<algorithm> <key id> <encapsulated key, hex> <inner content
type>`` (the content type last, it may hold spaces). Messages of rows written before it carry the four
headers above; the reference consumer reads both."""
_HPKE_INFO = b"exnode relay v1"
_HPKE_EXPORT = b"exnode message key"


class BadConsumerKey(SecurityError):
    """A consumer's encryption key that is not a public key of its stated algorithm."""


_HPKE_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def _sm2_point(public_pem: str) -> bytes:
    try:
        return parse_public_key("SM2-SM3", public_pem)._key  # type: ignore[return-value]
    except UnusableKey as error:
        raise BadConsumerKey(str(error)) from None


@dataclass(frozen=True)
class ConsumerKey:
    """A consumer's registered encryption public key (SubjectPublicKeyInfo PEM) and its id, the first 16
    hex digits of SHA-256 over the PEM's DER, as for signing keys."""

    kid: str
    algorithm: str
    public_pem: str


def parse_consumer_key(algorithm: str, public_pem: str) -> ConsumerKey:
    """Checked to be an X25519 key (HPKE) or an SM2 point (SM2 encryption); BadConsumerKey says why not."""
    if algorithm not in CONSUMER_ALGORITHMS:
        raise BadConsumerKey(f"unknown algorithm {algorithm!r}; known: {', '.join(CONSUMER_ALGORITHMS)}")
    if algorithm == SM2_SM4:
        _sm2_point(public_pem)
    else:
        try:
            key = serialization.load_pem_public_key(public_pem.encode())
        except ValueError as error:
            raise BadConsumerKey(f"not a PEM public key: {error}") from None
        if not isinstance(key, x25519.X25519PublicKey):
            raise BadConsumerKey(f"a {type(key).__name__}, not an X25519 public key")
    lines = public_pem.strip().splitlines()
    der = base64.b64decode("".join(lines[1:-1]))
    return ConsumerKey(hashlib.sha256(der).hexdigest()[:16], algorithm, public_pem)


@dataclass(frozen=True)
class RowSeal:
    """The key that seals every message of one outbox row to its consumer, and the headers that let the
    consumer (and only it) derive the key again: one KEM operation per row, AES/SM4-GCM per message."""

    headers: dict[str, str]
    cipher: Cipher
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False, compare=False)

    def seal(self, record_id: str, body: bytes) -> bytes:
        """One message: its nonce is its number under this row's fresh key (never repeated, no system call)."""
        return self.cipher.seal(body, message_aad(record_id), next(self._numbers).to_bytes(NONCE_SIZE, "big"))

    def message_headers(self, inner_content_type: str) -> dict[str, str]:
        """The one ``x-exnode-enc`` header of a relayed message sealed by this row's key."""
        return {HEADER_SEALED: " ".join((self.headers[HEADER_ALGORITHM], self.headers[HEADER_KID],
                                         self.headers[HEADER_KEY], inner_content_type))}


def sealing_of(headers: Mapping[str, object]) -> tuple[str, str, str, str]:
    """(algorithm, key id, encapsulated key, inner content type) of a relayed message's headers: its
    ``x-exnode-enc`` header, or the four headers of a message written before it."""
    compact = headers.get(HEADER_SEALED)
    if compact is not None:
        parts = str(compact).split(" ", 3)
        if len(parts) == 4:
            return parts[0], parts[1], parts[2], parts[3]
        return "", "", "", ""
    return (str(headers.get(HEADER_ALGORITHM, "")), str(headers.get(HEADER_KID, "")),
            str(headers.get(HEADER_KEY, "")), str(headers.get(HEADER_INNER, "")))


def sealing_context(batch_id: str, kid: str) -> str:
    """What a row's key is bound to (HPKE's info): a key block copied to another batch fails to open."""
    return f"{batch_id}\x00{kid}"


def pack_records(records: list[bytes]) -> bytes:
    """Length-prefixed records: what a sealed pull batch seals as one message."""
    return b"".join(len(record).to_bytes(4, "big") + record for record in records)


def unpack_records(blob: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(blob):
        size = int.from_bytes(blob[at:at + 4], "big")
        out.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    if at != len(blob):
        raise TamperedCiphertext("a sealed batch's records are truncated")
    return out


def message_aad(record_id: str) -> bytes:
    return b"exnode message " + record_id.encode("utf-8")


def seal_to(key: ConsumerKey, context: str) -> RowSeal:
    """A fresh message key for ``key``'s holder, bound to ``context`` (batch and consumer)."""
    headers = {HEADER_ALGORITHM: key.algorithm, HEADER_KID: key.kid}
    if key.algorithm == HPKE_X25519:
        encapsulated, sender = _HPKE_SUITE.create_sender_context(KEMKey.from_pem(key.public_pem),
                                                                   info=_HPKE_INFO + context.encode())
        cipher = Cipher(AES_256_GCM, sender.export(_HPKE_EXPORT, KEY_SIZES[AES_256_GCM]))
        return RowSeal({**headers, HEADER_KEY: encapsulated.hex()}, cipher)
    material = new_key(SM4_GCM)
    wrapped = gmssl_pyx.sm2_encrypt(_sm2_point(key.public_pem), material)
    return RowSeal({**headers, HEADER_KEY: wrapped.hex()}, Cipher(SM4_GCM, material))


class ConsumerPrivateKey:
    """What a consumer keeps (the reference consumer, ``exnode``'s CLI): opens what was sealed to it."""

    def __init__(self, algorithm: str, private_pem: bytes) -> None:
        if algorithm not in CONSUMER_ALGORITHMS:
            raise BadConsumerKey(f"unknown algorithm {algorithm!r}; known: {', '.join(CONSUMER_ALGORITHMS)}")
        self.algorithm = algorithm
        self.private_pem = private_pem
        self._opened: dict[tuple[str, str], Cipher] = {}
        if algorithm == HPKE_X25519:
            private = serialization.load_pem_private_key(private_pem, password=None)
            self._hpke_key = KEMKey.from_pem(private_pem)
            public = private.public_key().public_bytes(serialization.Encoding.PEM,  # type: ignore[union-attr]
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
            self.public_pem = public.decode()
        else:
            self._sm2 = Sm2PrivateKey.from_pkcs8(unpem("PRIVATE KEY", private_pem))
            self.public_pem = pem("PUBLIC KEY", self._sm2.public_der()).decode()
        self.kid = parse_consumer_key(algorithm, self.public_pem).kid

    @classmethod
    def generate(cls, algorithm: str = HPKE_X25519) -> ConsumerPrivateKey:
        if algorithm == SM2_SM4:
            return cls(algorithm, pem("PRIVATE KEY", Sm2PrivateKey.generate().pkcs8()))
        private = x25519.X25519PrivateKey.generate()
        return cls(algorithm, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))

    def open(self, headers: Mapping[str, object], context: str, record_id: str, body: bytes) -> bytes:
        """The inner message; TamperedCiphertext naming the record when its tag fails, BadConsumerKey when
        it was sealed to another key."""
        return self.open_sealed(str(headers.get(HEADER_ALGORITHM, "")), str(headers.get(HEADER_KID, "")),
                                str(headers.get(HEADER_KEY, "")), context, record_id, body)

    def open_sealed(self, algorithm: str, kid: str, encapsulated: str, context: str, record_id: str,
                    body: bytes) -> bytes:
        """``open`` of the parts themselves (a relayed message's ``sealing_of``)."""
        what = f"message of record {record_id}"
        if kid != self.kid or algorithm != self.algorithm:
            raise BadConsumerKey(f"{what}: sealed to key {kid!r} ({algorithm}), not to this key {self.kid}")
        cipher = self._opened.get((encapsulated, context))
        if cipher is None:
            try:
                raw = bytes.fromhex(encapsulated)
                if self.algorithm == HPKE_X25519:
                    recipient = _HPKE_SUITE.create_recipient_context(raw, self._hpke_key,
                                                                       info=_HPKE_INFO + context.encode())
                    cipher = Cipher(AES_256_GCM, recipient.export(_HPKE_EXPORT, KEY_SIZES[AES_256_GCM]))
                else:
                    cipher = Cipher(SM4_GCM, gmssl_pyx.sm2_decrypt(self._sm2._private_scalar, raw))
            except Exception as error:  # pyhpke and GmSSL raise their own kinds for a broken key block
                raise TamperedCiphertext(f"{what}: the encapsulated key does not open: {error}") from None
            if len(self._opened) > 1024:
                self._opened.clear()
            self._opened[(encapsulated, context)] = cipher
        return cipher.open(body, message_aad(record_id), what)
